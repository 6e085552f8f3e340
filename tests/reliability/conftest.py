"""Fixtures of the reliability suite: the emulator, homes on SQLite and PostgreSQL, the app.

The app-over-HTTP fixtures are the API suite's (one definition of the served app).
"""

from __future__ import annotations

from tests.integration.api.conftest import api, ctx, emulator, profiles

__all__ = ["api", "ctx", "emulator", "profiles"]
