#!/usr/bin/env bash
# Run each pull-queue peer RUNS times (default 3), print one JSON line per run, then
# the median figures per peer. Needs Redis on 127.0.0.1:6379 (db 15 is flushed) and
# PostgreSQL on 127.0.0.1:5432 (user postgres; database pushq_bench_procrastinate is
# created and wiped). The peers get their own virtualenv, .venv-peers, with the
# versions pinned in pyproject.toml's `bench` extra.
set -euo pipefail
cd "$(dirname "$0")"
root=../..
venv="$root/.venv-peers"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
mapfile -t packages < <(python3 -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["bench"]))' \
    "$root/pyproject.toml")
"$venv/bin/python" -m pip install --quiet "${packages[@]}"

runs="${RUNS:-3}"
results="$(mktemp /tmp/pushq-peers-XXXXXX.jsonl)"
# Slow peers get fewer jobs so that each run stays well under a minute.
for _ in $(seq "$runs"); do
    "$venv/bin/python" celery_redis.py --jobs "${CELERY_JOBS:-20000}" | tee -a "$results"
    "$venv/bin/python" dramatiq_redis.py --jobs "${DRAMATIQ_JOBS:-20000}" | tee -a "$results"
    "$venv/bin/python" procrastinate_pg.py --jobs "${PROCRASTINATE_JOBS:-5000}" | tee -a "$results"
    "$venv/bin/python" rq_redis.py --jobs "${RQ_JOBS:-2000}" --warmup 100 | tee -a "$results"
done
"$venv/bin/python" - "$results" <<'PY'
import json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1])]
print("\nmedians (runs whose ledger failed are left out)")
for peer in dict.fromkeys(run["peer"] for run in runs):
    ok = [run for run in runs if run["peer"] == peer and run["ledger_ok"]]
    if not ok:
        print(f"  {peer:14} no run passed its ledger")
        continue
    enqueue = statistics.median(run["enqueue_per_s"] for run in ok)
    e2e = statistics.median(run["end_to_end_per_s"] for run in ok)
    dups = sum(run["duplicates"] for run in ok)
    print(f"  {peer:14} enqueue {enqueue:8,.0f}/s  end-to-end {e2e:8,.0f}/s"
          f"  duplicates {dups}  runs {len(ok)}/{sum(r['peer'] == peer for r in runs)}")
PY
