"""`pushq bench`: the benchmark ships with pushq and prints, in one invocation,
pushq's end-to-end run beside the raw push ceiling and the peers, as ratios.

A small real run (a real `pushq serve`, the harness's worker endpoint, the ceiling's
handler) checks the figures hang together; bad arguments fail at once with one line,
before any benchmark has run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PEER_FIGURES = {"peer": "dramatiq", "jobs": 20, "enqueue_per_s": 400.0, "end_to_end_per_s": 250.0}


def bench(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pushq", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stand_in_peers(root: Path) -> Path:
    """A checkout's layout (bench/peers beside .venv-peers) whose one peer prints the
    JSON line a peer prints; the real peers need their own virtualenv and Redis."""
    folder = root / "bench" / "peers"
    folder.mkdir(parents=True)
    (folder / "run_all.sh").write_text("#!/bin/sh\n")
    (folder / "dramatiq_redis.py").write_text(
        f"import json\nprint('warming up')\nprint(json.dumps({PEER_FIGURES!r}))\n"
    )
    venv_bin = root / ".venv-peers" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    return folder


@pytest.mark.timeout(300)
def test_one_invocation_prints_pushq_beside_the_ceiling_and_the_peers(tmp_path: Path) -> None:
    stand_in_peers(tmp_path)
    out = tmp_path / "figures.json"
    done = bench(
        "throughput", "ceiling", "peers", "--peers", "dramatiq", "--jobs", "300",
        "--json", str(out), "--data-dir", str(tmp_path / "data"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = {entry["scenario"]: entry for entry in json.loads(out.read_text())}

    pushq = results["throughput (empty table) run 1"]
    assert pushq["ledger_ok"] and pushq["duplicates"] == 0
    assert pushq["counts"]["delivered_unique"] == 300  # the measured phase's jobs, each once
    assert pushq["counts"]["succeeded"] == 300 + 300  # and the warm-up's, in pushq's counts
    assert pushq["end_to_end_per_s"] > 0 and pushq["pushq_cpu_us_per_job"] > 0
    ceiling = results["raw push ceiling run 1"]
    assert ceiling["failures"] == 0 and ceiling["requests_per_s"] > 0

    same_run = results["same run"]
    assert same_run["end_to_end_over_ceiling"] == pytest.approx(
        pushq["end_to_end_per_s"] / ceiling["requests_per_s"]
    )
    assert same_run["pushq_over_dramatiq"] == pytest.approx(
        pushq["end_to_end_per_s"] / PEER_FIGURES["end_to_end_per_s"]
    )
    assert "== same run" in done.stdout and "end_to_end_over_ceiling" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["througput"], "unknown scenario througput (choose from throughput,"),
        (["peers", "--peers", "celry"], "unknown peer celry (choose from celery,"),
        (["throughput", "peers", "--peers-dir", "nowhere"], "peers' programs are not in nowhere"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_before_running(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = bench(*args, cwd=tmp_path, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""  # nothing ran


def test_peers_without_their_virtualenv_say_how_to_make_it(tmp_path: Path) -> None:
    folder = stand_in_peers(tmp_path)
    (tmp_path / ".venv-peers" / "bin" / "python").unlink()
    done = bench("peers", cwd=tmp_path, timeout=30)
    assert done.returncode == 2
    assert f"run `bash {folder.relative_to(tmp_path)}/run_all.sh` once" in done.stderr


def test_pushq_help_lists_bench() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pushq", "--help"], capture_output=True, text=True, check=True
    )
    assert "bench" in done.stdout
