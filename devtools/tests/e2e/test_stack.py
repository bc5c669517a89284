"""The launcher's failure path: the component that cannot start is named, with its log, and nothing stays up."""

from __future__ import annotations

import socket

import pytest
from bobdesk_devtools.stack import HTTP_COMPONENTS, MONGO_PORT, SIMULATORS, Stack, StartFailed, free_port
from bobdesk_devtools.testing import TEST_ENV


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_component_that_cannot_start_stops_everything_started_and_is_named_with_its_log(tmp_path):
    ports = {variable: free_port() for variable in (MONGO_PORT[0], *(s.port_variable for s in SIMULATORS),
                                                    *(c.port_variable for c in HTTP_COMPONENTS))}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports["INVOICES_PORT"] = taken.getsockname()[1]
        stack = Stack({**TEST_ENV, **{k: str(v) for k, v in ports.items()}}, tmp_path)
        with pytest.raises(StartFailed) as failure:
            stack.start()
        del ports["INVOICES_PORT"]
    assert failure.value.component == "invoices-service"
    message = str(failure.value)
    assert "exited with code" in message and str(tmp_path / "logs/invoices-service.log") in message
    assert "Connection in use" in message  # gunicorn's own last lines
    assert stack.processes == []
    assert [variable for variable, port in ports.items() if listening(port)] == []
