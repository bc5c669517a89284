"""The simulator's outgoing webhooks, signed as Yooz signs them (`Yooz-Signature: t=<unix>,v1=<hex>`).

Written apart from the adapter's verifier on purpose: a shared helper would let
one mistake pass both sides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time

import requests

from .demo_data import iso_z

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Yooz-Signature"


def signature_header(body: bytes, secrets_: list[str], timestamp: int) -> str:
    signatures = [hmac.new(s.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
                  for s in secrets_]
    return ",".join([f"t={timestamp}", *(f"v1={s}" for s in signatures)])


def build_event(event_type: str, invoice_id: str, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_{secrets.token_hex(10)}", "type": event_type,
            "created_at": iso_z(dt.datetime.now(dt.UTC)), "data": {"invoice_id": invoice_id}}


def deliver(url: str, event: dict, secrets_: list[str], *, timestamp: int | None = None,
            timeout: float = 5.0) -> dict:
    """POST `event` signed with every secret in `secrets_`; what the receiver answered."""
    body = json.dumps(event).encode()
    header = signature_header(body, secrets_, int(time.time()) if timestamp is None else timestamp)
    try:
        response = requests.post(url, data=body, timeout=timeout,
                                 headers={"Content-Type": "application/json", SIGNATURE_HEADER: header})
    except requests.RequestException as exc:
        return {"event": event, "status": None, "error": type(exc).__name__}
    try:
        answer = response.json()
    except ValueError:
        answer = response.text[:500]
    return {"event": event, "status": response.status_code, "response": answer}


def deliver_later(url: str, event: dict, secrets_: list[str]) -> None:
    """Fire and forget (admin changes answer at once; the receiver may be slow or down)."""

    def send():
        outcome = deliver(url, event, secrets_)
        log.info("webhook sent", extra={"event_id": event["id"], "type": event["type"], "status": outcome["status"]})

    threading.Thread(target=send, daemon=True, name="webhook-sender").start()
