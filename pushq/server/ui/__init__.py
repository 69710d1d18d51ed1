"""The web dashboard: session cookies (session.py), its two pages (login.html,
dashboard.html) and the static files they load (static/: plain JavaScript and
CSS, no build step, nothing from a CDN)."""

from __future__ import annotations

from pathlib import Path

PAGES_DIR = Path(__file__).parent
STATIC_DIR = PAGES_DIR / "static"
