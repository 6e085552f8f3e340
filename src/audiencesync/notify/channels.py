"""One notification URL: checked and described without its secrets, and sent to."""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from audiencesync.errors import AudiencesyncError, UserInputError

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2000
#: apprise reports why a send failed through its logger; only its last lines are kept.
_MAX_ERROR_CHARS = 300
# apprise's log capture is process-wide: one send at a time keeps each error its own.
_SENDING = threading.Lock()


class DeliveryError(AudiencesyncError):
    """A channel did not take the notification (refused, unreachable, timed out)."""

    retryable = True


@dataclass(frozen=True)
class ChannelAddress:
    """What may be shown of a channel URL: its scheme and host, never the rest."""

    scheme: str
    host: str

    @property
    def display(self) -> str:
        return f"{self.scheme}://{self.host}" if self.host else f"{self.scheme}://…"


def _apprise() -> ModuleType:
    """apprise, imported on first use (it loads every plugin, which CLI start-up need not pay).

    apprise 2.3 imports the standard library's deprecated ``imghdr`` on Python 3.11/3.12
    (for PGP mail); that one warning is silenced, no other.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="'imghdr' is deprecated", category=DeprecationWarning
        )
        import apprise
        from apprise.apprise import N_MGR

        N_MGR.load_modules()  # type: ignore[no-untyped-call] # the plugins load here, inside the filter, once
    # apprise logs some URLs whole ("Unparseable URL ..."): its records go only to the
    # captures below, and what is kept of them has the URL's parts taken out.
    quiet = logging.getLogger("apprise")
    if quiet.propagate:
        quiet.propagate = False
        quiet.addHandler(logging.NullHandler())
    return apprise


def scheme_of(url: str) -> str:
    """The scheme of a notification URL, lower case ("" when it has none)."""
    head, found, _ = url.strip().partition("://")
    return head.lower() if found else ""


def _shown_host(url: str) -> str:
    """The host when it is a network address; "" when the 'host' is really a token.

    Several services put a key where a host would be (``slack://TokenA/TokenB/TokenC``):
    only names with a dot, ``localhost`` and IP addresses are shown.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    if not host or not ("." in host or ":" in host or host == "localhost"):
        return ""
    return f"{host}:{port}" if port else host


def describe(url: str) -> ChannelAddress:
    """Check ``url`` is a notification URL apprise can send to; its scheme and host.

    Raises UserInputError (one sentence, without the URL's secrets) when it is not.
    """
    apprise = _apprise()
    cleaned = url.strip()
    if not cleaned or len(cleaned) > MAX_URL_LENGTH or any(c in cleaned for c in "\r\n\t "):
        raise UserInputError(
            f"a channel URL must be one line of 1 to {MAX_URL_LENGTH} characters without "
            "spaces: write it in apprise's syntax, e.g. json://host:port/path or "
            "mailtos://user:password@smtp.example.com?to=ops@example.com."
        )
    scheme = scheme_of(cleaned)
    if not scheme:
        raise UserInputError(
            "a channel URL starts with a scheme, e.g. json://, mailto://, mailtos://, "
            "slack:// or workflows://: see apprise's list of services."
        )
    with _SENDING, apprise.LogCapture(level=logging.WARNING):
        service = apprise.Apprise.instantiate(cleaned)
    if service is None:
        raise UserInputError(
            f"apprise cannot send to this {scheme}:// URL (unknown service or missing "
            "parts): check it against apprise's page for that service."
        )
    return ChannelAddress(scheme=scheme, host=_shown_host(cleaned))


def send(url: str, title: str, body: str, *, timeout_seconds: float) -> None:
    """Send one notification (one attempt); raises DeliveryError when it was not taken.

    The error says what apprise reported (its messages name the service and host, not
    the URL's credentials).
    """
    apprise = _apprise()
    asset = apprise.AppriseAsset(app_id="audiencesync", app_desc="audiencesync alerts")
    service = apprise.Apprise.instantiate(url.strip(), asset=asset)
    if service is None:
        raise DeliveryError("the channel URL is no longer one apprise can send to: replace it.")
    service.socket_connect_timeout = timeout_seconds
    service.socket_read_timeout = timeout_seconds
    name = str(service.service_name or scheme_of(url))
    capture = apprise.LogCapture(level=logging.WARNING)
    with _SENDING, capture as captured:
        try:
            taken = bool(service.notify(body=_body_for(apprise, service, body), title=title))
        except Exception as error:  # noqa: BLE001 - a plugin's defect is this channel's failure
            raise DeliveryError(
                f"delivery failed: {type(error).__name__} in apprise's {name} plugin."
            ) from None
        report = captured.getvalue()
    if not taken:
        raise DeliveryError(_failure_sentence(report, name, url))


def _body_for(apprise: ModuleType, service: Any, body: str) -> str:
    """The plain-text body as the service sends it: HTML for one that sends HTML (email).

    An email goes out as HTML with a plain-text part derived from it; plain text given
    as HTML loses its line breaks in both. apprise's own converter turns the text into
    HTML (escaped, ``<br/>`` for each line break), from which the plain part gets its
    line breaks back. Other services get the text as it is.
    """
    formats = getattr(service, "notify_format", None)
    first = formats[0] if isinstance(formats, tuple) and formats else formats
    if first == apprise.NotifyFormat.HTML:
        from apprise.conversion import convert_between

        html = convert_between(  # type: ignore[no-untyped-call]
            apprise.NotifyFormat.TEXT, apprise.NotifyFormat.HTML, body
        )
        return str(html)
    return body


def _secret_parts(url: str) -> list[str]:
    """Every part of ``url`` that may be a key: user, password, path segments, values."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return [url]
    candidates = [url.strip(), parts.username or "", parts.password or ""]
    candidates += parts.path.split("/")
    candidates += [pair.partition("=")[2] for pair in parts.query.split("&")]
    if not _shown_host(url):
        candidates.append(parts.netloc)
    return sorted({c for c in candidates if len(c) >= 3}, key=len, reverse=True)


def _failure_sentence(report: str, service: str, url: str) -> str:
    lines = [line.split(" - ", 2)[-1].strip() for line in report.splitlines() if line.strip()]
    detail = " ".join(lines[-2:])
    for secret in _secret_parts(url):
        detail = detail.replace(secret, "…")
    detail = detail[:_MAX_ERROR_CHARS]
    return f"{service} did not take the alert" + (f": {detail}" if detail else ".")
