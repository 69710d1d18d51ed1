"""`python -m bench throughput ...`: pushq's benchmark, run from a checkout."""

from __future__ import annotations

import sys

from .pushq_bench import main

sys.exit(main(sys.argv[1:]))
