"""`python -m bench throughput ...`: pushq's benchmark, run from a checkout.

`python -m bench inbound ...` runs bench/enqueue.py (the enqueue path beside its
ceilings, and counts on a big table) instead."""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["inbound"]:
    from .enqueue import main as inbound

    sys.exit(inbound(sys.argv[2:]))

from pushq.bench.harness import main

sys.exit(main(sys.argv[1:]))
