"""The enqueue-time target check (DESIGN.md "Delivery targets"), for every URL
pushq will deliver to: job URLs, callback URLs and topic endpoints."""

from __future__ import annotations

from ...errors import TargetRefused
from ...policy.targets import TargetPolicy
from .schemas import JobTemplate


def check_target(policy: TargetPolicy, url: str, field: str) -> None:
    """Raise TargetRefused (400 target_refused) naming `field` and the reason when
    `policy` refuses `url`; host names pass here and are checked at connect time."""
    decision = policy.check_url(url)
    if not decision.allowed:
        raise TargetRefused(f"{field}: target refused: {decision.reason}")


def check_job_targets(policy: TargetPolicy, job: JobTemplate, where: str = "") -> None:
    """A job's url, callback_url and failure_callback_url, each through check_target."""
    check_target(policy, job.url, f"{where}url")
    if job.callback_url is not None:
        check_target(policy, job.callback_url, f"{where}callback_url")
    if job.failure_callback_url is not None:
        check_target(policy, job.failure_callback_url, f"{where}failure_callback_url")
