"""Regular expressions for bounded numbers written as text ("30s", "10/m").

The API validates such strings with these patterns and /openapi.json publishes
the same patterns, so what the document allows and what the server accepts are
one rule. They use only syntax that Python's `re` and ECMA-262 (JSON Schema's
dialect) read alike: ASCII classes, no flags, no lookbehind.
"""

from __future__ import annotations


def _same_length(lo: str, hi: str) -> list[str]:
    """Alternatives matching the integers lo..hi, both written with len(lo) digits."""
    if lo == hi:
        return [lo]
    if len(lo) == 1:
        return [f"[{lo}-{hi}]"]
    rest = len(lo) - 1
    if lo[1:] == "0" * rest and hi[1:] == "9" * rest:
        head = lo[0] if lo[0] == hi[0] else f"[{lo[0]}-{hi[0]}]"
        return [f"{head}[0-9]{{{rest}}}"]
    if lo[0] == hi[0]:
        return [lo[0] + "(?:" + "|".join(_same_length(lo[1:], hi[1:])) + ")"]
    parts = [lo[0] + "(?:" + "|".join(_same_length(lo[1:], "9" * rest)) + ")"]
    if int(hi[0]) - int(lo[0]) > 1:
        parts.append(f"[{int(lo[0]) + 1}-{int(hi[0]) - 1}][0-9]{{{rest}}}")
    parts.append(hi[0] + "(?:" + "|".join(_same_length("0" * rest, hi[1:])) + ")")
    return parts


def int_range(lo: int, hi: int) -> str:
    """A group matching lo..hi written without leading zeros (0 <= lo <= hi)."""
    if not 0 <= lo <= hi:
        raise ValueError("need 0 <= lo <= hi")
    parts: list[str] = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        low = max(lo, 10 ** (width - 1) if width > 1 else 0)
        high = min(hi, 10**width - 1)
        if low <= high:
            parts += _same_length(str(low), str(high))
    return "(?:" + "|".join(parts) + ")"


def decimal_at_most(limit: int, *, positive: bool) -> str:
    """A group matching decimals like "12" or "1.5" (leading zeros allowed) that are
    at most `limit`, and above zero when `positive`."""
    fraction = r"(?:\.[0-9]+)?"
    if limit == 0:
        return r"(?:0+(?:\.0+)?)" if not positive else "(?!)"
    parts = []
    if limit > 1 or not positive:
        parts.append(int_range(1 if positive else 0, limit - 1) + fraction)
    if positive:
        parts.append(r"0\.[0-9]*[1-9][0-9]*")  # 0.5: above zero, below one
    parts.append(f"{limit}" + r"(?:\.0+)?")
    return "0*(?:" + "|".join(parts) + ")"
