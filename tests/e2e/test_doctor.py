"""`pushq doctor` against a real deployment: all good while serving; a loose data
dir, a stopped server and loose secrets are named with what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..harness import PushqProcess


def doctor(server: PushqProcess) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    env.update(PUSHQ_DATA_DIR=str(server.data_dir), PUSHQ_PORT=str(server.port))
    return subprocess.run(
        [sys.executable, "-m", "pushq", "doctor"], env=env, capture_output=True, text=True
    )


def test_doctor_passes_a_healthy_deployment_and_names_what_to_fix(
    tmp_path: Path, start_pushq: Callable[..., PushqProcess]
) -> None:
    server = start_pushq(tmp_path / "data")
    (server.data_dir / "pushq.log").unlink()  # the harness logs there; a real one does not
    server.data_dir.chmod(0o700)
    good = doctor(server)
    assert good.returncode == 0, good.stdout
    assert good.stdout.splitlines()[-1] == "all good"
    assert f"{server.base_url}/health answers 200" in good.stdout
    assert "quick_check ok" in good.stdout

    server.terminate()
    server.data_dir.chmod(0o755)
    (server.data_dir / "api-token").write_text("pq_" + "x" * 30)
    (server.data_dir / "api-token").chmod(0o644)
    bad = doctor(server)
    assert bad.returncode == 1
    assert "fix: chmod 700" in bad.stdout
    assert f"fix: chmod 600 {server.data_dir / 'api-token'}" in bad.stdout
    assert "does not answer from this host" in bad.stdout
    assert "fix: start pushq serve" in bad.stdout
    assert bad.stdout.splitlines()[-1] == "2 to fix, 1 to look at"
