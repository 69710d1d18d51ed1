"""Hooks for the schemathesis run (SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks).

GET /v1/jobs/{id}?wait=N holds the answer up to N seconds (60 at most) while the job
is unfinished, as documented: a run that made many such calls would spend its whole
time budget waiting. A valid wait is cut to 0.2 s before the call; an invalid one is
sent as generated, so the check that it is refused still runs.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from pushq.server.api.schemas import WAIT_PATTERN


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    wait = (case.query or {}).get("wait")
    if isinstance(wait, str) and re.fullmatch(WAIT_PATTERN, wait):
        case.query["wait"] = "0.2"
