"""The emulator's per-second count: the most arrivals within any one-second interval."""

from __future__ import annotations

from audiencesync.emulator.control import most_in_any_window


def brute_force(times: list[float], seconds: float) -> int:
    return max(
        (sum(1 for t in times if start <= t < start + seconds) for start in times), default=0
    )


def test_the_busiest_second_is_found_wherever_it_starts() -> None:
    times = [0.0, 0.5, 0.99, 1.0, 1.2, 3.0, 3.05, 3.1]
    assert most_in_any_window(times, 1.0) == brute_force(times, 1.0) == 4
    assert most_in_any_window([], 1.0) == 0
    evenly = [n * 0.11 for n in range(100)]  # what a 10-per-1.1-s client sends
    assert most_in_any_window(evenly, 1.0) == brute_force(evenly, 1.0) == 10
