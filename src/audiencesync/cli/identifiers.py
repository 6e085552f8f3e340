"""``audiencesync identifiers hash``: see what would be sent for a value, and why not."""

from __future__ import annotations

from typing import Annotated

import typer

from audiencesync.identifiers import Normalized, check_default_country, normalize, parse_kind

app = typer.Typer(
    help="Check how identifiers are normalized and hashed before they are sent.",
    no_args_is_help=True,
)


@app.command("hash")
def hash_(
    values: Annotated[
        list[str],
        typer.Argument(
            help="Values to normalize and hash (put -- before a value starting with '-')."
        ),
    ],
    type_: Annotated[str, typer.Option("--type", help="email, phone or maid.")],
    default_country: Annotated[
        str | None,
        typer.Option(
            "--default-country",
            help="ISO country code (e.g. GB) that completes phone numbers written without one.",
        ),
    ] = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Hash 64-hex values too, instead of taking them as hashed."),
    ] = False,
) -> None:
    """Print, per value, "normalized<TAB>hash" or "rejected<TAB>reason". Needs no home folder."""
    kind = parse_kind(type_)
    region = check_default_country(default_country) if default_country is not None else None
    for value in values:
        outcome = normalize(kind, value, default_country=region, raw=raw)
        if isinstance(outcome, Normalized):
            typer.echo(f"{_printable(outcome.value)}\t{outcome.hash}")
        else:
            typer.echo(f"rejected\t{outcome.reason}")


def _printable(text: str) -> str:
    # An email may hold control characters; never let them drive the user's terminal.
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
