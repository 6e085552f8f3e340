"""Alert channels: send a title and a body to a notification URL.

The URL is in apprise's own syntax (``mailto://``, ``mailtos://``, ``json://``,
``slack://``, ``workflows://`` ...); apprise does the sending. This package knows
nothing of exports or runs: the engine (:mod:`audiencesync.sync.alerts`) decides what to
say and to whom.
"""

from __future__ import annotations

from audiencesync.notify.channels import (
    MAX_URL_LENGTH,
    ChannelAddress,
    DeliveryError,
    describe,
    send,
)

__all__ = ["MAX_URL_LENGTH", "ChannelAddress", "DeliveryError", "describe", "send"]
