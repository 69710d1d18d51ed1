"""The store conformance suite runs through the `with_store` fixture (tests/conftest.py),
once per backend in tests/stores.py."""

from __future__ import annotations

from ..stores import Scenario, WithStore

__all__ = ["Scenario", "WithStore"]
