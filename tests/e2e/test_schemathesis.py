"""schemathesis (a tool nobody here wrote) holds the API to /openapi.json: with every
check on (`--checks all`: no 5xx, every status and header documented, responses as the
schema says, schema-valid requests accepted, schema-invalid ones refused, 405s with a
correct Allow, auth enforced), a bounded run must find 0 failures.

The jobs schemathesis enqueues carry URLs it made up (any host, any IP literal), and
pushq tries to deliver them. So the server and schemathesis run together inside a
network namespace that has only loopback (`unshare --net`): no delivery attempt can
leave the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..harness import TEST_SECRET, TEST_TOKEN, free_port

ROOT = Path(__file__).resolve().parents[2]

# Inside the namespace: loopback up, pushq serve, wait for /health, then schemathesis.
SCRIPT = r"""
set -eu
ip link set lo up
"$PYTHON" -m pushq serve >"$DATA/pushq.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 200); do
    "$PYTHON" -c "import httpx,sys; httpx.get('$URL/health', timeout=1).raise_for_status()" \
        2>/dev/null && break
    sleep 0.1
done
"$SCHEMATHESIS" run "$URL/openapi.json" --checks all \
    -H "Authorization: Bearer $PUSHQ_API_TOKEN" "$@"
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    done = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10)
    return done.returncode == 0


def run_schemathesis(tmp_path: Path, *options: str, timeout: float) -> str:
    """Run pushq and schemathesis in a loopback-only namespace; schemathesis's output."""
    if not _can_unshare():
        if os.environ.get("CI"):
            pytest.fail("CI must run schemathesis in a network namespace (unshare --net, ip)")
        pytest.skip("needs unshare --net (root) and ip")
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    env = dict(os.environ)
    env.update(
        {
            "PYTHON": sys.executable,
            "SCHEMATHESIS": str(Path(sys.executable).with_name("schemathesis")),
            "DATA": str(data),
            "URL": f"http://127.0.0.1:{port}",
            "PUSHQ_API_TOKEN": TEST_TOKEN,
            "PUSHQ_SIGNING_SECRET": TEST_SECRET,
            "PUSHQ_PORT": str(port),
            "PUSHQ_DATA_DIR": str(data),
            "PUSHQ_LOG_LEVEL": "WARNING",
            # Which targets a deployment refuses (400 target_refused) is its settings'
            # say, which no schema can state (tests/*/test_targets.py test them);
            # here every address is allowed, and the namespace keeps packets home.
            "PUSHQ_TARGETS_ALLOW": "0.0.0.0/0,::/0",
            "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        }
    )
    done = subprocess.run(
        ["unshare", "--net", "bash", "-c", SCRIPT, "schemathesis", *options],
        env=env,
        cwd=tmp_path,  # schemathesis writes its .schemathesis/ state here
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    log = (data / "pushq.log").read_text(errors="replace") if (data / "pushq.log").exists() else ""
    # No 500 was logged (a long poll cut off by the shutdown at the end is not one).
    assert "unexpected error on" not in log, log[-6000:]
    assert done.returncode == 0, output[-12000:]
    return output


def summary(output: str) -> tuple[int, int]:
    """(test cases generated, failures) from schemathesis's closing lines."""
    generated = re.search(r"(\d+) generated", output)
    failures = re.search(r"(\d+) failures?\b", output.split("SUMMARY")[-1])
    return (int(generated.group(1)) if generated else 0, int(failures.group(1)) if failures else 0)


BOUNDED = (
    "--seed=16",
    "--max-examples=8",
    "--max-time=30",
    "--request-timeout=10",
    "--generation-database=none",
    # GET /v1/endpoints/{origin}'s path pattern (scheme://host:port, percent-encoded)
    # is one that few generated strings match; this health check is about generation
    # speed, not the API: every case that is generated is still checked.
    "--suppress-health-check=filter_too_much",
    "--no-color",
)


def test_the_api_matches_its_openapi_document(tmp_path: Path) -> None:
    output = run_schemathesis(tmp_path, *BOUNDED, timeout=110)
    generated, failures = summary(output)
    print(f"schemathesis: {generated} test cases, {failures} failures")
    assert failures == 0, output[-12000:]
    assert generated > 100, output[-4000:]  # a run that tested nothing proves nothing


@pytest.mark.heavy
@pytest.mark.timeout(1300)
def test_the_api_matches_its_openapi_document_in_a_long_run(tmp_path: Path) -> None:
    options = [o for o in BOUNDED if not o.startswith(("--max-examples", "--max-time", "--seed"))]
    output = run_schemathesis(
        tmp_path, *options, "--max-examples=100", "--max-time=900", timeout=1200
    )
    assert summary(output)[1] == 0, output[-12000:]
