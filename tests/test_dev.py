"""``./dev test`` brings the Redis the service tests need: it starts one when none answers, and stops it.

Why: without a Redis the service tests used to end in a raw ``ConnectionError`` to
127.0.0.1:6379, and the README never said one was needed. On this machine a Redis already answers
on that port, so the start path is checked in a new network namespace (its own loopback with
nothing listening), which needs root, ``unshare`` and ``ip``; where those are missing it skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]

TESTS_REDIS_PORT = 6379  # tests/service/conftest.py's REDIS_TEST_URL
RUN_TIMEOUT_S = 120
THIS_TEST = "tests/test_dev.py::test_a_redis_answers_on_the_tests_port"


def test_a_redis_answers_on_the_tests_port() -> None:
    """The service tests' precondition, said plainly when it fails (and what ./dev test checks below)."""
    try:
        redis.Redis(host="127.0.0.1", port=TESTS_REDIS_PORT, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"no Redis answers on 127.0.0.1:{TESTS_REDIS_PORT} ({error}); run the tests with ./dev test, "
                    "which starts one, or start any Redis there")


def namespaces_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a network namespace"
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)}"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    return f"unshare -n refused here: {probe.stderr.strip()}" if probe.returncode else None


def test_dev_test_starts_a_redis_when_none_answers_and_stops_it() -> None:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    subprocess.run([str(ROOT / "dev"), "setup"], check=True, timeout=RUN_TIMEOUT_S)  # needs the network the namespace lacks
    script = f"""
        ip link set lo up
        ./dev test -p no:cacheprovider {THIS_TEST}
        if .venv/bin/python -c "import redis; redis.Redis(port={TESTS_REDIS_PORT}, socket_connect_timeout=1).ping()" 2> /dev/null; then
            echo "a Redis still answers after ./dev test ended"
            exit 3
        fi
    """
    shell = subprocess.Popen(["unshare", "-n", "bash", "-e", "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = shell.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        output = f"(no end within {RUN_TIMEOUT_S} s: a process left behind holds its output open)"
    finally:
        try:
            os.killpg(shell.pid, signal.SIGKILL)  # nothing should be left; a leftover server would outlive the namespace
        except ProcessLookupError:
            pass
        shell.wait()
    assert shell.returncode == 0, f"./dev test in a namespace without Redis exited {shell.returncode}:\n{output}"
    assert "== dev: started Redis server" in output, f"./dev test did not start a Redis:\n{output}"
    assert "1 passed" in output, f"the test run under ./dev did not pass:\n{output}"
