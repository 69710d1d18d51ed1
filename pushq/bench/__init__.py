"""`pushq bench`: pushq's end-to-end benchmark beside the raw push ceiling and the
pull-queue peers, measured in one invocation (docs/benchmarks.md).

The harness ships with the package so that any installation can rerun the comparison;
the peers' own programs stay in the repository (bench/peers/), with their virtualenv.
"""
