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

import pyarrow as pa

from audiencesync.identifiers.batch import hash_batch
from audiencesync.types import IdentifierType


def measure_hashing(n: int = 1_000_000, *, repeats: int = 3, seed: int = 0) -> dict[str, object]:
    """Seconds to hash ``n`` synthetic emails with :func:`hash_batch`, and the floor.

    ``seconds`` starts from the same Python strings as the bare loop (so it includes
    building the Arrow array); ``from_arrow_seconds`` starts from an Arrow array, as the
    export engine does. Each figure is the best of ``repeats`` runs.
    """
    emails = synthetic_emails(n, seed=seed)
    return _measure("emails", IdentifierType.EMAIL, emails, repeats=repeats)


def measure_phone_hashing(
    n: int = 1_000_000,
    *,
    default_country: str | None = None,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, object]:
    """As :func:`measure_hashing`, for phones: international numbers written with '+'
    and spaces, or, with ``default_country="GB"``, national UK numbers ("07...")."""
    numbers = synthetic_phones(n, national=default_country is not None, seed=seed)
    figures = _measure(
        "phones", IdentifierType.PHONE, numbers, repeats=repeats, default_country=default_country
    )
    figures["default_country"] = default_country
    return figures


def _measure(
    label: str,
    kind: IdentifierType,
    values: list[str],
    *,
    repeats: int,
    default_country: str | None = None,
) -> dict[str, object]:
    def bare() -> None:
        sha256 = hashlib.sha256
        for value in values:
            sha256(value.encode()).hexdigest()

    arrow_values = pa.array(values, pa.string())
    runs: dict[str, Callable[[], object]] = {
        "bare": bare,
        "python": lambda: hash_batch(kind, values, default_country=default_country),
        "arrow": lambda: hash_batch(kind, arrow_values, default_country=default_country),
    }
    # Interleaved, best of each: others' load on a shared machine then hits all alike.
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(max(1, repeats)):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return {
        label: len(values),
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


def synthetic_phones(n: int, *, national: bool = False, seed: int = 0) -> list[str]:
    """``n`` UK mobile numbers: "+44 7xxx xxxxxx", or national "07xxx xxxxxx"."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    prefix = "07" if national else "+44 7"
    return [f"{prefix}{rng.randint(100, 999)} {rng.randint(100000, 999999)}" for _ in range(n)]


def _pick(rng: random.Random, bases: Sequence[str], count: int) -> list[str]:
    letters = string.ascii_lowercase
    return [f"{''.join(rng.choices(letters, k=6))}.{rng.choice(bases)}" for _ in range(count)]
