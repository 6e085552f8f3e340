"""The data-privacy and compliance text a connection's creator agrees to."""

from __future__ import annotations

import hashlib

# One paragraph per line: interfaces wrap it to their width (pre-wrap in the web UI).
PRIVACY_TEXT = (
    "Data privacy and compliance\n"
    "\n"
    "When you connect audiencesync to Snapchat, you allow it to transmit data outside of "
    "the systems you run audiencesync on, to Snap Inc., including Personal Data: email "
    "addresses, phone numbers and mobile advertising ids of the profiles in the segments "
    "you export, normalized and hashed with SHA-256 as Snap requires. audiencesync "
    "transfers such data at your instruction, but you are responsible for ensuring that "
    "you may share it with Snapchat for advertising (consent of the people concerned, your "
    "privacy notice) and that Snapchat meets any privacy or security obligations you may "
    "have.\n"
    "\n"
    "An administrator can remove this connection at any time to stop all transfers.\n"
)

#: identifies the exact text agreed to; stored with each consent.
CONSENT_VERSION = hashlib.sha256(PRIVACY_TEXT.encode("utf-8")).hexdigest()[:16]
