"""The web UI: server-rendered pages with htmx, over the same services as the CLI and API."""
