"""audiencesync: keep Snapchat customer-list audiences in step with your own segments."""

__version__ = "0.1.0"
