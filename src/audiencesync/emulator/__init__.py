"""A local Snapchat Marketing API (OAuth, Ads API, customer lists) for tests and demos.

A tool, not part of the product: it imports nothing else from audiencesync, so it
cannot share the client's code or its bugs. It follows ``SNAPCHAT_API.md`` strictly
where Snap documents a rule. Start it with ``audiencesync emulator`` or, from Python,
:func:`audiencesync.emulator.testing.running_emulator`; see ``docs/emulator.md``.
"""

from audiencesync.emulator.config import EmulatorConfig, Faults, Schema, ScriptedFault

__all__ = ["EmulatorConfig", "Faults", "Schema", "ScriptedFault"]
