"""The job states, as the API shows them, and which of them are final."""

from __future__ import annotations

PUBLIC_STATES = ("scheduled", "pending", "active", "retrying", "succeeded", "dead", "cancelled")
# Final: only a redrive (a deliberate operator action) takes a job out of `dead`.
TERMINAL_STATES = frozenset({"succeeded", "dead", "cancelled"})
