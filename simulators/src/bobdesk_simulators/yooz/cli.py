"""Drive a running simulator from a shell: `python -m bobdesk_simulators.yooz.cli <command> ...`.

Examples:
  cli accounts
  cli add-invoice --account demo --field order_reference=T-2024-0003
  cli update-invoice YZ-2026-00001 --field status=paid
  cli delete-invoice YZ-2026-00001
  cli generate 2000
  cli faults --throttle-rate 0.3 --error-rate 0.2 --malformed-rate 0.1 --retry-after 1
  cli send-webhook YZ-2026-00001 --type invoice.updated
  cli webhook-url http://127.0.0.1:8003/webhooks/yooz/<connection id>
  cli stats
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import requests

from .demo_data import DEMO_ACCOUNT


def _default_url() -> str:
    return os.environ.get("YOOZ_BASE_URL") or f"http://127.0.0.1:{os.environ.get('YOOZ_SIM_PORT', '8090')}"


def _fields(pairs: list[str]) -> dict:
    fields = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--field needs name=value, got {pair!r}")
        try:
            fields[name] = json.loads(value)  # numbers, null, objects...
        except ValueError:
            fields[name] = value
    return fields


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bobdesk_simulators.yooz.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=_default_url(), help="simulator root (YOOZ_BASE_URL)")
    parser.add_argument("--account", default=DEMO_ACCOUNT, help="account id (default: demo)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("accounts", help="list accounts with their stats")
    create = commands.add_parser("create-account", help="a new account (prints its API key and webhook secret)")
    create.add_argument("--id")
    create.add_argument("--invoices", type=int, default=0)
    add = commands.add_parser("add-invoice", help="a new generated invoice")
    add.add_argument("--field", action="append", default=[], metavar="NAME=VALUE")
    update = commands.add_parser("update-invoice", help="change fields (updated_at moves)")
    update.add_argument("invoice_id")
    update.add_argument("--field", action="append", default=[], metavar="NAME=VALUE")
    delete = commands.add_parser("delete-invoice", help="soft delete (status deleted)")
    delete.add_argument("invoice_id")
    generate = commands.add_parser("generate", help="bulk-generate N invoices")
    generate.add_argument("count", type=int)
    faults = commands.add_parser("faults", help="set fault injection (omitted rates are 0)")
    for name in ("throttle-rate", "error-rate", "slow-rate", "malformed-rate", "slow-seconds"):
        faults.add_argument(f"--{name}", type=float, default=0.0)
    faults.add_argument("--retry-after", type=int, default=1)
    faults.add_argument("--endpoints", nargs="+", choices=("list", "get"), default=["list", "get"])
    send = commands.add_parser("send-webhook", help="send a signed event now")
    send.add_argument("invoice_id")
    send.add_argument("--type", default="invoice.created",
                      choices=("invoice.created", "invoice.updated", "invoice.deleted"))
    send.add_argument("--to", dest="target", help="receiver URL (default: the account's webhook_url)")
    hook = commands.add_parser("webhook-url", help="where change notifications go (empty string: none)")
    hook.add_argument("target")
    commands.add_parser("stats", help="request statistics of the account")
    return parser


def admin_request(args: argparse.Namespace) -> tuple[str, str, dict | None]:
    """The admin API call a command stands for: (method, path, JSON body)."""
    account = f"/_admin/accounts/{args.account}"
    match args.command:
        case "accounts":
            return "GET", "/_admin/accounts", None
        case "create-account":
            return "POST", "/_admin/accounts", {k: v for k, v in {"id": args.id, "invoices": args.invoices}.items()
                                                  if v is not None}
        case "add-invoice":
            return "POST", f"{account}/invoices", {"fields": _fields(args.field)}
        case "update-invoice":
            return "PATCH", f"{account}/invoices/{args.invoice_id}", {"fields": _fields(args.field)}
        case "delete-invoice":
            return "DELETE", f"{account}/invoices/{args.invoice_id}", None
        case "generate":
            return "POST", f"{account}/invoices/generate", {"count": args.count}
        case "faults":
            return "PUT", f"{account}/faults", {
                "throttle_rate": args.throttle_rate, "error_rate": args.error_rate, "slow_rate": args.slow_rate,
                "malformed_rate": args.malformed_rate, "slow_seconds": args.slow_seconds,
                "retry_after": args.retry_after, "endpoints": args.endpoints}
        case "send-webhook":
            body = {"invoice_id": args.invoice_id, "type": args.type}
            if args.target:
                body["url"] = args.target
            return "POST", f"{account}/webhooks", body
        case "webhook-url":
            return "PATCH", account, {"webhook_url": args.target or None}
        case "stats":
            return "GET", f"{account}/stats", None
    raise SystemExit(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    method, path, body = admin_request(args)
    try:
        response = requests.request(method, args.url.rstrip("/") + path, json=body, timeout=30)
    except requests.RequestException as exc:
        print(f"cannot reach the simulator at {args.url}: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(response.json(), indent=2, ensure_ascii=False))
    except ValueError:
        print(response.text or f"HTTP {response.status_code}")
    return 0 if response.ok else 1


if __name__ == "__main__":
    sys.exit(main())
