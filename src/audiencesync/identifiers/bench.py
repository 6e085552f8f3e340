"""How fast :func:`hash_batch` is against the floor: a bare ``hashlib`` loop.

``audiencesync bench`` reports these figures; tests never assert them (timings depend on
the machine and on who else is using it).
"""

from __future__ import annotations

import hashlib
import random
import string
import time
from collections.abc import Callable, Sequence
from typing import Literal

import pyarrow as pa

from audiencesync.identifiers.batch import HashedBatch, hash_batch
from audiencesync.types import IdentifierType


def measure_hashing(n: int = 1_000_000, *, repeats: int = 3, seed: int = 0) -> dict[str, object]:
    """Seconds to hash ``n`` synthetic emails with :func:`hash_batch`, and the floor.

    ``seconds`` starts from the same Python strings as the bare loop (so it includes
    building the Arrow array); ``from_arrow_seconds`` starts from an Arrow array, as the
    export engine does. Each figure is the best of ``repeats`` runs.
    """
    emails = synthetic_emails(n, seed=seed)
    return _measure("emails", IdentifierType.EMAIL, emails, repeats=repeats)


PhoneMix = Literal["international", "national", "mixed"]


def measure_phone_hashing(
    n: int = 1_000_000,
    *,
    default_country: str | None = None,
    mix: PhoneMix | None = None,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, object]:
    """As :func:`measure_hashing`, for phones (see :func:`synthetic_phones`).

    ``mix`` defaults to ``"national"`` with a ``default_country``, else
    ``"international"``. ``"mixed"`` is a column like the demo's, to measure with
    ``default_country="GB"``: its national numbers are British.
    """
    chosen: PhoneMix = mix or ("national" if default_country else "international")
    numbers = synthetic_phones(n, mix=chosen, seed=seed)
    figures = _measure(
        "phones", IdentifierType.PHONE, numbers, repeats=repeats, default_country=default_country
    )
    figures["mix"] = chosen
    figures["default_country"] = default_country
    return figures


def _measure(
    label: str,
    kind: IdentifierType,
    values: Sequence[str | None],
    *,
    repeats: int,
    default_country: str | None = None,
) -> dict[str, object]:
    def bare() -> None:
        sha256 = hashlib.sha256
        for value in values:
            if value is not None:
                sha256(value.encode()).hexdigest()

    arrow_values = pa.array(values, pa.string())
    last: list[HashedBatch] = []

    def from_arrow() -> None:
        last[:] = [hash_batch(kind, arrow_values, default_country=default_country)]

    runs: dict[str, Callable[[], object]] = {
        "bare": bare,
        "python": lambda: hash_batch(kind, values, default_country=default_country),
        "arrow": from_arrow,
    }
    # Interleaved, best of each: others' load on a shared machine then hits all alike.
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(max(1, repeats)):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    hashed = last[0]
    return {
        label: len(values),
        "accepted": hashed.accepted,
        "rejected": {str(reason): count for reason, count in hashed.rejected.items()},
        "seconds": round(best["python"], 3),
        "from_arrow_seconds": round(best["arrow"], 3),
        "bare_hashlib_seconds": round(best["bare"], 3),
        "ratio": round(best["python"] / best["bare"], 2),
        "from_arrow_ratio": round(best["arrow"] / best["bare"], 2),
    }


def synthetic_emails(n: int, *, seed: int = 0) -> list[str]:
    """``n`` plausible emails, some upper-case or padded with spaces, as in real exports."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    local_chars = string.ascii_letters + string.digits + "._+"
    domains = _pick(rng, ["gmail.com", "Example.org", "yahoo.co.uk", "outlook.com"], 50)
    emails = []
    for _ in range(n):
        local = "".join(rng.choices(local_chars, k=rng.randint(5, 15)))
        email = f"{local}@{rng.choice(domains)}"
        emails.append(f" {email} " if rng.random() < 0.1 else email)
    return emails


def synthetic_phones(
    n: int, *, national: bool = False, mix: PhoneMix | None = None, seed: int = 0
) -> list[str | None]:
    """``n`` phone numbers, as a column of one of these mixes:

    - ``"international"`` (the default): UK mobiles written "+44 7xxx xxxxxx";
    - ``"national"`` (or ``national=True``): the same written "07xxx xxxxxx";
    - ``"mixed"``, like the demo's profiles (``profiles.synthetic``) in the proportions
      of a real list: about 40% with a country code ("+44 7700 900123",
      "0044 20 7946 0958", "+1 (415) 555-0123", "+33.6.12345678", "+44 (0)20 ..."),
      40% British numbers without one ("07700 900123", "(0)20 7946 0958",
      "020-7946-0958", "07700900123", "7700 900123"), 20% empty or invalid (missing,
      blank, "12", "n/a").
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    chosen = mix or ("national" if national else "international")
    if chosen != "mixed":
        prefix = "07" if chosen == "national" else "+44 7"
        return [f"{prefix}{rng.randint(100, 999)} {rng.randint(100000, 999999)}" for _ in range(n)]
    numbers: list[str | None] = []
    forms: list[str | None]
    for _ in range(n):
        draw = rng.random()
        a, b, c = rng.randint(100, 999), rng.randint(100000, 999999), rng.randint(1000, 9999)
        if draw < 0.4:
            forms = [
                f"+44 7{a} {b}",
                f"0044 20 7946 {c}",
                f"+1 ({a % 800 + 200}) {a}-{c}",
                f"+33.6.{b}{a % 100:02d}",
                f"+44 (0)20 7946 {c}",
            ]
        elif draw < 0.8:
            forms = [
                f"07{a} {b}",
                f"(0)20 7946 {c}",
                f"020-7946-{c}",
                f"07{a}{b}",
                f"7{a} {b}",
            ]
        else:
            forms = [None, "", "  ", "12", "n/a"]
        numbers.append(rng.choice(forms))
    return numbers


def _pick(rng: random.Random, bases: Sequence[str], count: int) -> list[str]:
    letters = string.ascii_lowercase
    return [f"{''.join(rng.choices(letters, k=6))}.{rng.choice(bases)}" for _ in range(count)]
