"""Sharing free delivery slots between queues: smooth weighted round robin.

Each queue's weight is 4^priority (priority clamped to -5..5). Slot by slot,
every queue that can still take one earns its weight in credit; the richest
gets the slot and pays the total. Over rounds each queue gets slots in
proportion to its weight, however few slots free up at a time (one by one is
the dispatcher's usual case), so a low-priority queue is served less, never
not at all. The credit carries over between rounds.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping


def weight(priority: int) -> float:
    return 4.0 ** max(-5, min(5, priority))


def fair_shares(
    allowances: Mapping[str, int],
    priorities: Mapping[str, int],
    slots: int,
    credit: MutableMapping[str, float],
) -> dict[str, int]:
    """How many of `slots` each queue gets, none more than its allowance."""
    shares: dict[str, int] = {}
    for _ in range(slots):
        eligible = [q for q, allowed in allowances.items() if shares.get(q, 0) < allowed]
        if not eligible:
            break
        total = 0.0
        for queue in eligible:
            w = weight(priorities[queue])
            credit[queue] = credit.get(queue, 0.0) + w
            total += w
        best = max(eligible, key=lambda q: (credit[q], priorities[q]))
        credit[best] -= total
        shares[best] = shares.get(best, 0) + 1
    return shares
