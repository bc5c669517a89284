import io
import json
import logging

import pytest
from bobdesk_shared.logs import REDACTED, configure_logging, register_secret


@pytest.fixture
def capture():
    stream = io.StringIO()
    configure_logging("probe", "INFO", stream=stream)
    logger = logging.getLogger("probe.test")

    def lines():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield logger, lines, stream
    configure_logging("probe", "INFO")


def test_lines_are_json_with_fields(capture):
    logger, lines, _ = capture
    logger.info("polled %s", "conn-1", extra={"connection": "conn-1", "pages": 3})
    entry = lines()[0]
    assert entry["msg"] == "polled conn-1" and entry["connection"] == "conn-1" and entry["pages"] == 3
    assert entry["level"] == "info" and entry["service"] == "probe" and entry["ts"].endswith("Z")


def test_registered_secret_is_masked_in_message_and_fields(capture):
    logger, lines, stream = capture
    secret = "yz_live_sk_9f8e7d6c5b4a"
    register_secret(secret)
    logger.info("calling with %s", secret)
    logger.warning("provider said: invalid key " + secret + "!", extra={"detail": {"echo": [f"k={secret}"]}})
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        logger.exception("failed")
    text = stream.getvalue()
    assert secret not in text
    assert REDACTED in lines()[0]["msg"]
    assert lines()[1]["detail"]["echo"] == [f"k={REDACTED}"]
    assert "exc" in lines()[2]


def test_secret_named_fields_are_masked_whatever_their_value(capture):
    logger, lines, stream = capture
    body = {"apiKey": "abc-unregistered-1", "webhookSecret": "w-unreg-2", "provider": "yooz"}
    logger.info("create", extra={"body": body, "authorization": "Bearer abc.def.ghi"})
    entry = lines()[0]
    assert entry["body"] == {"apiKey": REDACTED, "webhookSecret": REDACTED, "provider": "yooz"}
    assert entry["authorization"] == REDACTED
    assert "abc-unregistered-1" not in stream.getvalue()


def test_inline_bearer_and_signatures_are_masked(capture):
    logger, lines, _ = capture
    logger.info("header Bearer eyJhbGciOi.abc.def and Yooz-Signature t=1,v1=deadbeef00")
    msg = lines()[0]["msg"]
    assert "eyJhbGciOi" not in msg and "deadbeef00" not in msg
