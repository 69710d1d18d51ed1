#!/usr/bin/env bash
# Every figure of the performance targets (docs/benchmarks.md, "One sitting") in one
# sitting, each step's results as JSON in OUT (default ./bench-sitting). Needs wrk,
# Redis and PostgreSQL as the benchmarks do, and `bash bench/peers/run_all.sh` once.
#   bash bench/sitting.sh [OUT] [BASELINE_CHECKOUT]
# With a baseline checkout (a worktree of an older commit with its own .venv), its
# pushq runs beside this one in the enqueue runs and in alternated end-to-end runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-sitting}"
baseline="${2:-}"
py=.venv/bin/python
mkdir -p "$out"
uptime | tee "$out/load-before.txt"

# end to end beside the raw push ceiling and Dramatiq, and latency at 1,000 jobs/s
$py -m pushq bench throughput ceiling latency peers --peers dramatiq --repeat 3 \
    --json "$out/end_to_end.json" | tee "$out/end_to_end.txt"
if [ -n "$baseline" ]; then  # before/after end to end, alternated
    for round in 1 2 3; do
        $py -m pushq bench throughput --jobs 10000 --pushq "$baseline/.venv/bin/pushq" \
            --json "$out/pair-$round-before.json" >/dev/null
        $py -m pushq bench throughput --jobs 10000 --json "$out/pair-$round-after.json" >/dev/null
    done
fi
# single enqueue beside a no-op Starlette POST under wrk, and batch enqueue
$py -m bench.enqueue single batch --rounds 3 ${baseline:+--baseline "$baseline"} \
    --json "$out/enqueue.json" | tee "$out/enqueue.txt"
# PostgreSQL: 1, 2 and 3 nodes beside SQLite
$py -m bench.pg_nodes --url "${PUSHQ_BENCH_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}" \
    --nodes 1,2,3 --jobs 5000 --rate 100 --seconds 10 --json "$out/pg_nodes.json" \
    | tee "$out/pg_nodes.txt"
# kept: 10 M-row throughput, RSS with 1 M waiting, restart to first delivery, counts
$py -m pushq bench throughput history backlog --json "$out/kept.json" | tee "$out/kept.txt"
$py -m bench.enqueue counts --rows 10000000 --json "$out/counts.json" | tee "$out/counts.txt"
uptime | tee "$out/load-after.txt"
