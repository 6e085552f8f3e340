"""``audiencesync identifiers hash``, run as a user runs it."""

from __future__ import annotations

from pathlib import Path

from tests.cli_runner import run_cli


def test_hash_prints_normalized_and_hash_or_the_reason(tmp_path: Path) -> None:
    result = run_cli(
        "identifiers", "hash", "--type", "email", "Person@email.com ", "nope", "", home=tmp_path
    )
    assert result.code == 0, result.output
    assert result.stdout.splitlines() == [
        "person@email.com\tb375b7bbddb3de3298fbc7641063d9f03a38e118aa4480c8ab9f58740982e8bd",
        "rejected\tnot_an_email",
        "rejected\tempty",
    ]
    assert not (tmp_path / "control.db").exists()


def test_phone_with_and_without_default_country(tmp_path: Path) -> None:
    result = run_cli(
        "identifiers", "hash", "--type", "PHONE", "+1(706)-767-5127", "07911 123456", home=tmp_path
    )
    assert result.stdout.splitlines() == [
        "17067675127\t2fd199db6d3fa9fe754886ff1822f2867fcb104a6639495eca25c2978efe4ed4",
        "rejected\tphone_no_country_code",
    ]
    result = run_cli(
        "identifiers",
        "hash",
        "--type",
        "phone",
        "--default-country",
        "gb",
        "07911 123456",
        home=tmp_path,
    )
    assert result.code == 0, result.output
    assert result.stdout.startswith("447911123456\t")


def test_maid_prehashed_and_raw(tmp_path: Path) -> None:
    hashed = "30A5154B77AB8B2DDBE19F5E7AF72F33CC2A4A41F22940D965102650A1C72863"
    result = run_cli("identifiers", "hash", "--type", "maid", hashed, home=tmp_path)
    assert result.stdout == f"{hashed.lower()}\t{hashed.lower()}\n"
    result = run_cli("identifiers", "hash", "--type", "maid", "--raw", hashed, home=tmp_path)
    assert result.stdout == "rejected\tmaid_invalid\n"


def test_unprintable_characters_are_escaped(tmp_path: Path) -> None:
    # A private-use character is no control character: the address is kept, and printed
    # escaped so that it cannot garble the terminal.
    result = run_cli("identifiers", "hash", "--type", "email", "a\ue000@b.c", home=tmp_path)
    assert result.stdout.startswith("a\\ue000@b.c\t")


def test_control_characters_are_rejected_not_printed(tmp_path: Path) -> None:
    result = run_cli("identifiers", "hash", "--type", "email", "a\x1b[31m@b.c", home=tmp_path)
    assert result.stdout == "rejected\tnot_an_email\n"


def test_bad_type_or_country_is_one_sentence(tmp_path: Path) -> None:
    result = run_cli("identifiers", "hash", "--type", "idfa", "x", home=tmp_path)
    assert result.code == 2
    assert result.stderr.strip() == (
        "error: unknown identifier type 'idfa': use one of email, phone, maid."
    )
    result = run_cli(
        "identifiers", "hash", "--type", "phone", "--default-country", "UK", "1", home=tmp_path
    )
    assert result.code == 2
    assert result.stderr.startswith(
        "error: unknown default country 'UK' (the United Kingdom is GB)"
    )
    assert "Traceback" not in result.output
