"""The sync engine: connections, exports, runs (plan, push, confirm) and schedules."""
