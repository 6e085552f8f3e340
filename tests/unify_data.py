"""Three synthetic sources whose true persons are known, for unification tests.

A CRM, an online shop and a loyalty programme hold records of the same people: emails
with case and spacing typos, phones in international and national (GB) formats, customer
numbers with stray spaces, a second email in the shop for some people, and placeholder
emails (``noreply@example.com``) shared by many records of different people. The truth
(record -> person) is kept beside the data, so tests measure precision and recall.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

LAST_NAMES = [
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel",
    "robinson", "wright", "thompson", "evans", "walker", "white", "roberts", "green", "hall",
    "wood", "jackson", "clarke", "khan", "lewis", "harris", "martin", "cooper", "king", "lee",
]  # fmt: skip
FIRST_NAMES = ["amy", "ben", "cara", "dev", "ella", "finn", "gita", "hugo", "ivy", "jon"]
PLACEHOLDER = "noreply@example.com"

RULES_YAML = """\
fields:
  email: email
  phone: phone
  customer_number: code
  first_name: text
  last_name: text
  postcode: code
  updated: value
sources:
  crm:
    fields: {email: email_address, phone: mobile, customer_number: cust_no,
             first_name: first, last_name: last, postcode: zip, updated: modified}
    updated_at: modified
  shop:
    fields: {email: mail, phone: tel, first_name: fname, last_name: lname, postcode: post}
  loyalty:
    fields: {customer_number: member_of, email: e_mail, phone: phone_no,
             last_name: surname, postcode: pc}
match:
  - email
  - phone
  - customer_number
  - [last_name, postcode]
survivorship:
  first_name: most_recent
  last_name: most_frequent
  postcode: source_priority
  customer_number: source_priority
default_country: GB
limits:
  max_records_per_key: 20
"""


@dataclass
class Person:
    number: int
    first: str
    last: str
    postcode: str
    email: str
    email2: str | None
    phone: str  # national digits after +44 7
    customer: str


@dataclass
class Sources:
    """Rows per source (lists of dicts) and the truth: (dataset, key) -> person."""

    crm: list[dict[str, str]] = field(default_factory=list)
    shop: list[dict[str, str]] = field(default_factory=list)
    loyalty: list[dict[str, str]] = field(default_factory=list)
    truth: dict[tuple[str, str], int] = field(default_factory=dict)
    placeholder_records: int = 0
    sparse_records: int = 0

    def write(self, folder: Path) -> dict[str, Path]:
        paths = {}
        for name in ("crm", "shop", "loyalty"):
            rows: list[dict[str, str]] = getattr(self, name)
            path = folder / f"{name}.csv"
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(_COLUMNS[name]))
                writer.writeheader()
                writer.writerows(rows)
            paths[name] = path
        return paths


_COLUMNS = {
    "crm": ("crm_id", "email_address", "mobile", "cust_no", "first", "last", "zip", "modified"),
    "shop": ("shop_id", "mail", "tel", "fname", "lname", "post"),
    "loyalty": ("card", "member_of", "e_mail", "phone_no", "surname", "pc"),
}


def _typo_email(rng: random.Random, email: str) -> str:
    choice = rng.random()
    if choice < 0.3:
        return email.upper()
    if choice < 0.5:
        return f"  {email.capitalize()} "
    return email


def _phone_format(rng: random.Random, digits: str) -> str:
    choice = rng.random()
    if choice < 0.35:
        return f"+44 7{digits[:3]} {digits[3:]}"
    if choice < 0.7:
        return f"07{digits[:3]} {digits[3:]}"
    return f"(07{digits[:3]}) {digits[3:6]}-{digits[6:]}"


def people(count: int, seed: int, start: int = 0) -> list[Person]:
    rng = random.Random(seed)
    found = []
    for n in range(start, start + count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        found.append(
            Person(
                number=n,
                first=first,
                last=last,
                postcode=f"{rng.choice('ABCDEFGHKLMN')}{rng.randint(1, 99)} "
                f"{rng.randint(1, 9)}{rng.choice('ABDEFGHJLN')}{rng.choice('PQRSTUWXYZ')}",
                email=f"{first}.{last}.{n}@example.org",
                email2=f"{first}{n}@mail.example.net" if rng.random() < 0.25 else None,
                phone=f"{rng.choice('5789')}{rng.randint(10, 99)}{n:06d}",
                customer=f"C{n:07d}",
            )
        )
    return found


def generate(
    persons: list[Person], seed: int, *, key_offset: int = 0, households: int = 2
) -> Sources:
    """Records of ``persons`` in three sources, with the truth beside them.

    ``households`` pairs of people share one phone (a landline, a conflict the rules
    cannot tell apart from one person: they are merged, which costs precision).
    """
    rng = random.Random(seed)
    pairs = zip(persons[:households], persons[households : 2 * households], strict=True)
    for first, second in pairs:
        second.phone = first.phone
    out = Sources()
    counter = key_offset
    for person in persons:
        # Every person is in at least one source; most are in two or three.
        where = [s for s, share in (("crm", 0.8), ("shop", 0.7), ("loyalty", 0.5))
                 if rng.random() < share] or [rng.choice(["crm", "shop", "loyalty"])]  # fmt: skip
        for source in where:
            counter += 1
            key = f"{source[0]}{counter}"
            out.truth[(source, key)] = person.number
            placeholder = rng.random() < 0.06
            email = PLACEHOLDER if placeholder else _typo_email(rng, person.email)
            if placeholder:
                out.placeholder_records += 1
                email = rng.choice([PLACEHOLDER, PLACEHOLDER.upper(), f" {PLACEHOLDER}"])
            phone = _phone_format(rng, person.phone)
            # Conflicting values: some records carry an old postcode (the person moved),
            # and a few hold nothing but a name and that old postcode: those cannot be
            # linked by any rule, and cost recall.
            postcode = person.postcode
            if rng.random() < 0.08:
                postcode = f"Z{rng.randint(1, 99)} {rng.randint(1, 9)}QQ"
            if rng.random() < 0.01:
                out.sparse_records += 1
                email, phone, postcode = "", "", f"Y{rng.randint(1, 99)} {rng.randint(1, 9)}QQ"
                customer = ""
            else:
                customer = person.customer
            if source == "crm":
                out.crm.append({
                    "crm_id": key, "email_address": email,
                    "mobile": phone if rng.random() < 0.7 or placeholder else "",
                    "cust_no": customer, "first": person.first.title(),
                    "last": person.last.title(), "zip": postcode,
                    "modified": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                })  # fmt: skip
            elif source == "shop":
                other = person.email2 is not None and rng.random() < 0.5
                out.shop.append({
                    "shop_id": key,
                    "mail": _typo_email(rng, person.email2) if other and person.email2 and email
                    else email,
                    "tel": phone if rng.random() < 0.6 or placeholder or other else "",
                    "fname": person.first, "lname": person.last.upper(),
                    "post": postcode.replace(" ", "").lower(),
                })  # fmt: skip
            else:
                spaced = f"{customer[:4]} {customer[4:]}" if customer else ""
                out.loyalty.append({
                    "card": key,
                    "member_of": spaced if rng.random() < 0.5 else customer.lower(),
                    "e_mail": email if rng.random() < 0.5 else "",
                    "phone_no": phone if rng.random() < 0.5 else "",
                    "surname": person.last, "pc": postcode,
                })  # fmt: skip
    return out


def pairwise(
    clusters: dict[tuple[str, str], int], truth: dict[tuple[str, str], int]
) -> tuple[float, float, int, int, int]:
    """(precision, recall, true positives, predicted pairs, true pairs) of record pairs.

    Computed by enumerating pairs in Python, independently of the engine's SQL.
    """
    by_cluster: dict[int, list[tuple[str, str]]] = {}
    for record, cluster in clusters.items():
        by_cluster.setdefault(cluster, []).append(record)
    by_person: dict[int, list[tuple[str, str]]] = {}
    for record, person in truth.items():
        by_person.setdefault(person, []).append(record)
    predicted = {frozenset(p) for members in by_cluster.values() for p in combinations(members, 2)}
    actual = {frozenset(p) for members in by_person.values() for p in combinations(members, 2)}
    hits = len(predicted & actual)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(actual) if actual else 1.0
    return precision, recall, hits, len(predicted), len(actual)
