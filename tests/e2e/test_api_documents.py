"""Every HTTP component's API document, end to end over real HTTP (the stack of conftest.py):

- no internal route in a clients' document, and the internal ones at `/internal/openapi.json`;
- schemathesis, following each document with valid tokens, finds nothing: all its default
  checks and phases, a fixed seed and a bounded number of examples;
- `/docs` renders its operations in headless Chromium with nothing reachable beyond loopback.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from bobdesk_devtools.testing import public_token, service_token, user_token
from bobdesk_shared.auth import INGEST_WORKER
from bobdesk_shared.canonical import EXAMPLE
from bson import ObjectId

from .conftest import COMPONENTS, WEBHOOK_SECRET

pytestmark = pytest.mark.e2e

SCHEMATHESIS_SEED = 20261201
SCHEMATHESIS_EXAMPLES = 25
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
# Everything but loopback is unreachable: no name resolves, and every other address goes to a dead proxy.
OFFLINE_FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9"]


@pytest.fixture(scope="module")
def urls(stack):
    return stack.urls


@pytest.fixture(scope="module")
def company(stack):
    """A company of its own (schemathesis may delete what it finds), with a connection and an
    invoice, so the documents' answers are checked on real resources too."""
    company = ObjectId()
    user = {"Authorization": f"Bearer {user_token(company)}"}
    created = requests.post(f"{stack.urls['connections']}/invoice-connections", headers=user, timeout=10,
                            json={"provider": "yooz", "apiKey": "yz_docs_key", "webhookSecret": WEBHOOK_SECRET})
    assert created.status_code == 201, created.text
    batch = requests.post(f"{stack.urls['invoices']}/internal/invoices/batch", timeout=10,
                          headers={"Authorization": f"Bearer {service_token(INGEST_WORKER)}"},
                          json={"connection": created.json()["id"], "fence": None,
                                "invoices": [{**EXAMPLE, "invoice_platform_id": "DOCS-1"}]})
    assert batch.status_code == 200, batch.text
    return company


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_no_internal_route_in_a_clients_document(urls, component):
    paths = requests.get(f"{urls[component]}/openapi.json", timeout=10).json()["paths"]
    assert paths and not [path for path in paths if path.startswith("/internal")]
    internal = requests.get(f"{urls[component]}/internal/openapi.json", timeout=10)
    if component == "webhooks":
        assert internal.status_code == 404  # it serves no internal route
    else:
        assert internal.json()["paths"] and all(path.startswith("/internal/") for path in internal.json()["paths"])


# The HTTP server's own refusals of an over-long URL, header or body are rejections too. A POST
# authenticated by the session cookie alone must be JSON (415, the cookie scheme's documented
# rule against cross-site forms), even where the body itself is optional (poll now).
REJECTIONS = """[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429",
                     "431", "5xx"]

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "415", "429", "5xx"]

# A webhook secret on a connection whose provider sends no webhooks is a 400
# (`webhooks_not_supported`) on PATCH too: the stored connection's provider decides, which no
# PATCH body can show. Only that operation may answer a schema-valid body with 400.
[[operations]]
include-method = "PATCH"
include-path = "/invoice-connections/{connection_id}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "415",
                                                     "429", "5xx"]
"""


def _schemathesis_config(path: Path, document: dict, company: ObjectId) -> Path:
    """Valid tokens of `company` for each Bearer scheme the document names. The session cookie is
    left to schemathesis, which sends arbitrary ones beside a valid Bearer token: credentials that
    disagree must be refused."""
    user, public = user_token(company, ttl_seconds=3600), public_token(company, ttl_seconds=3600)
    credentials = {"userToken": ("bearer", user), "publicToken": ("bearer", public)}
    schemes = [name for name in document.get("components", {}).get("securitySchemes", {}) if name in credentials]
    path.write_text("".join(f'[auth.openapi.{name}]\n{credentials[name][0]} = "{credentials[name][1]}"\n\n'
                            for name in schemes) + REJECTIONS)
    return path


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_schemathesis_finds_nothing(urls, company, component, tmp_path):
    exe = str(Path(sys.executable).with_name("schemathesis"))
    document = requests.get(f"{urls[component]}/openapi.json", timeout=10).json()
    config = _schemathesis_config(tmp_path / "schemathesis.toml", document, company)
    run = subprocess.run(
        [exe, "--config-file", str(config), "run", f"{urls[component]}/openapi.json", "--seed",
         str(SCHEMATHESIS_SEED), "--max-examples", str(SCHEMATHESIS_EXAMPLES), "--generation-database", "none",
         "--workers", "1", "--request-timeout", "10", "--no-color", "--report-dir", str(tmp_path / "report")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert re.search(r"\b[1-9]\d* passed\b|\bpassed\b", run.stdout), run.stdout


def _chromium() -> str:
    found = shutil.which("chromium")
    assert found, "headless Chromium is needed: `make install` installs Debian's chromium (tools/install.sh)"
    return found


def _operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method != "parameters"}


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_docs_render_every_operation_offline_in_chromium(urls, component, tmp_path):
    expected = _operations(requests.get(f"{urls[component]}/openapi.json", timeout=10).json())
    run = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, *OFFLINE_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--virtual-time-budget=20000", "--dump-dom", f"{urls[component]}/docs"],
        capture_output=True, text=True, timeout=120)
    dom = run.stdout
    methods = re.findall(r'class="opblock-summary-method">([A-Z]+)<', dom)
    paths = [html.unescape(path) for path in re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom)]
    assert set(zip(methods, paths, strict=True)) == expected, run.stderr[-3000:]
    # Nothing was refused by the page's Content-Security-Policy, and nothing failed to load.
    assert "Content Security Policy" not in run.stderr and "Failed to load resource" not in run.stderr, run.stderr
