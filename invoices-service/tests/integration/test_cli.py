"""`python -m invoices_service.cli ensure-indexes` (the deployment's ensure-indexes-invoices job)."""

import pytest
from invoices_service import cli


def test_the_ensure_indexes_command(test_env, mongo_client, monkeypatch):
    for name, value in test_env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["ensure-indexes"]) == 0
    indexes = mongo_client[test_env["INVOICES_DB"]]["invoices"].index_information()
    assert indexes["client_platform_id_provider"]["unique"]


def test_an_unknown_command_is_a_usage_error(test_env, monkeypatch, capsys):
    for name, value in test_env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drop-everything"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
