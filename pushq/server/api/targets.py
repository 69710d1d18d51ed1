"""The enqueue-time target check (DESIGN.md "Delivery targets"), for every URL
pushq will deliver to: job URLs, callback URLs and topic endpoints."""

from __future__ import annotations

from functools import lru_cache

from ...errors import TargetRefused
from ...policy.targets import Decision, TargetPolicy
from .schemas import JobTemplate


@lru_cache(maxsize=1024)
def _decide(policy: TargetPolicy, url: str) -> Decision:
    """policy.check_url, remembered: it reads only the URL's text (no DNS), and a
    producer sends the same few URLs again and again (a sixth of a batch's CPU)."""
    return policy.check_url(url)


def check_target(policy: TargetPolicy, url: str, field: str) -> None:
    """Raise TargetRefused (400 target_refused) naming `field` and the reason when
    `policy` refuses `url`; host names pass here and are checked at connect time."""
    decision = _decide(policy, url)
    if not decision.allowed:
        raise TargetRefused(f"{field}: target refused: {decision.reason}")


def check_job_targets(policy: TargetPolicy, job: JobTemplate, where: str = "") -> None:
    """A job's url, callback_url and failure_callback_url, each through check_target."""
    check_target(policy, job.url, f"{where}url")
    if job.callback_url is not None:
        check_target(policy, job.callback_url, f"{where}callback_url")
    if job.failure_callback_url is not None:
        check_target(policy, job.failure_callback_url, f"{where}failure_callback_url")
