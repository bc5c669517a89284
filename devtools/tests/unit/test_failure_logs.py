"""A failing test's report shows what the running stacks' components warned of, and only that."""

from __future__ import annotations

import textwrap

pytest_plugins = ["pytester"]

INNER_TEST = textwrap.dedent('''
    import json
    import pytest
    from bobdesk_devtools import stack

    @pytest.fixture
    def running(tmp_path):
        launched = stack.Stack({}, tmp_path, free_ports=True)
        (launched.logs / "poller.log").write_text("\\n".join([
            json.dumps({"level": "info", "msg": "poll finished", "outcome": "success"}),
            json.dumps({"level": "warning", "msg": "poll finished", "outcome": "failure", "error": "read timed out"}),
            "Traceback (most recent call last):",
            "",
        ]))
        stack.RUNNING.add(launched)  # as `start` does, without processes to start
        yield launched
        launched.stop()

    def test_passes(running):
        pass

    def test_fails(running):
        assert False, "lastPolledAt never came"
''')


def test_the_report_of_a_failing_test_ends_with_the_stacks_warnings_and_errors(pytester):
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("-p", "bobdesk_devtools.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert output.count("warnings and errors of the stack in") == 1  # the failing test's report only
    assert '"error": "read timed out"' in output
    assert "Traceback (most recent call last):" in output
    assert '"outcome": "success"' not in output
