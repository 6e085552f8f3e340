"""Destinations: one folder per ad platform, all behind the protocol in ``base``."""
