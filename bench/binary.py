"""`python -m bench.binary [EXECUTABLE ...]`: size and start-up time of pushq builds.

For each candidate (default: dist/pushq, and the installed package as
`python -m pushq`), with an empty environment as `env -i` gives: the size on
disk, the median wall time of `pushq --version`, and the median time from exec
to the first 200 from /health of `pushq serve` on a fresh data dir. End-to-end
throughput is `python -m bench throughput --pushq EXECUTABLE`.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path

from pushq.bench.harness import BENCH_SECRET, BENCH_TOKEN, free_port


def size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def version_time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*command, "--version"], env={}, check=True, capture_output=True)
    return time.perf_counter() - started


def health_time(command: list[str]) -> float:
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            "PUSHQ_PORT": str(port),
            "PUSHQ_DATA_DIR": data_dir,
            "PUSHQ_API_TOKEN": BENCH_TOKEN,
            "PUSHQ_SIGNING_SECRET": BENCH_SECRET,
        }
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                        return time.perf_counter() - started
                except OSError:
                    if process.poll() is not None:
                        raise RuntimeError(f"{command} serve exited {process.returncode}") from None
                    time.sleep(0.01)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.binary", description=__doc__)
    parser.add_argument("executables", nargs="*", default=["dist/pushq"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    candidates: list[tuple[str, list[str], Path]] = [
        (exe, [str(Path(exe).resolve())], Path(exe)) for exe in args.executables
    ]
    # The installed package's size: its site-packages (pushq and its dependencies; the
    # interpreter and its standard library come on top).
    site_packages = Path(sysconfig.get_paths()["purelib"])
    candidates.append(("python -m pushq", [sys.executable, "-m", "pushq"], site_packages))
    print(f"{'candidate':<40} {'size MB':>8} {'--version s':>12} {'/health s':>10}")
    for name, command, path in candidates:
        one_dir = (path.parent / "_internal").is_dir()  # PyInstaller --onedir: the folder
        target = path.parent if one_dir else path
        versions = [version_time(command) for _ in range(args.runs)]
        healths = [health_time(command) for _ in range(args.runs)]
        print(
            f"{name:<40} {size_mb(target):>8.1f} {statistics.median(versions):>12.2f} "
            f"{statistics.median(healths):>10.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
