"""Control-database models of the web UI and REST API: tokens, sessions, sign-in throttle.

Every secret here is stored as its SHA-256 only (API tokens, session ids) or encrypted
with the home's key (OAuth tokens waiting for the "Save" step of a new connection).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audiencesync.control.models import Base, utcnow


class ApiToken(Base):
    """A personal API token, created and revoked by its owner; only its hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: SHA-256 (hex) of the whole token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the first characters of the token, so its owner can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WebSession(Base):
    """A signed-in browser: the cookie holds a random id, the table its SHA-256."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    #: small per-session state: flash messages, a connection being added.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LoginThrottle(Base):
    """Failed sign-ins per user name and per client address, to slow password guessing."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(nullable=True)


class PendingAuthorization(Base):
    """A started "Authenticate with Snapchat": its state (hashed) and, once back, tokens."""

    __tablename__ = "oauth_pending"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    #: the TokenSet as JSON, encrypted with the home's key; None until the callback.
    tokens_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: where the sign-in was started and may only be finished: "api" or "browser" (a web
    #: session, whose own callback checks the state it keeps).
    channel: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
