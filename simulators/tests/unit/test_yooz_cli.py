"""`python -m bobdesk_simulators.yooz.cli`: each command drives the simulator's admin API."""

import threading

import pytest
from bobdesk_simulators.yooz import cli, demo_data
from bobdesk_simulators.yooz.__main__ import load_sim_settings
from bobdesk_simulators.yooz.app import build_app
from bobdesk_simulators.yooz.state import Store
from werkzeug.serving import make_server


@pytest.fixture
def simulator():
    store = Store(seed=3)
    store.load_demo()
    server = make_server("127.0.0.1", 0, build_app(store, load_sim_settings({})), threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield store, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def account_invoices(store) -> dict:
    return {invoice["id"]: invoice for invoice in store.accounts[demo_data.DEMO_ACCOUNT].invoices.values()}


def test_add_update_and_delete_an_invoice(simulator, capsys):
    store, url = simulator
    before = set(account_invoices(store))
    assert cli.main(["--url", url, "add-invoice", "--field", "order_reference=T-2024-0003"]) == 0
    (added,) = set(account_invoices(store)) - before
    assert account_invoices(store)[added]["order_reference"] == "T-2024-0003"
    assert cli.main(["--url", url, "update-invoice", added, "--field", "status=paid"]) == 0
    assert account_invoices(store)[added]["status"] == "paid"
    assert cli.main(["--url", url, "delete-invoice", added]) == 0
    assert account_invoices(store)[added]["status"] == "deleted"
    assert added in capsys.readouterr().out


def test_an_unknown_invoice_fails_and_an_unreachable_simulator_says_so(simulator, capsys):
    _, url = simulator
    assert cli.main(["--url", url, "update-invoice", "YZ-NOPE", "--field", "status=paid"]) == 1
    assert cli.main(["--url", "http://127.0.0.1:9", "stats"]) == 2
    assert "cannot reach the simulator" in capsys.readouterr().err


def test_a_field_needs_a_name_and_a_value():
    with pytest.raises(SystemExit, match="name=value"):
        cli.admin_request(cli.build_parser().parse_args(["add-invoice", "--field", "status"]))
