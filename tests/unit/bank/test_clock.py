"""The hybrid logical clock, driven by a fake physical clock."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bank.clock import DAY_MS, HLC, ClockSkewError, Stamp, wall_clock_ms


class FakeClock:
    def __init__(self, now: int = 1_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_stamp_order_is_lexicographic_with_origin_tiebreak() -> None:
    assert Stamp(1, 5, "z") < Stamp(2, 0, "a")
    assert Stamp(2, 0, "z") < Stamp(2, 1, "a")
    assert Stamp(2, 1, "a") < Stamp(2, 1, "b")
    assert max([Stamp(2, 1, "b"), Stamp(2, 1, "a"), Stamp(1, 9, "c")]) == Stamp(2, 1, "b")
    assert Stamp(3, 4, "x") == (3, 4, "x")


def test_tick_follows_wall_clock_and_counts_within_a_millisecond() -> None:
    clock = FakeClock(1_000)
    hlc = HLC("cam-a", clock)
    assert hlc.last == Stamp(0, 0, "cam-a")
    assert hlc.tick() == Stamp(1_000, 0, "cam-a")
    assert hlc.tick() == Stamp(1_000, 1, "cam-a")
    clock.now = 1_005
    assert hlc.tick() == Stamp(1_005, 0, "cam-a")
    assert hlc.last == Stamp(1_005, 0, "cam-a")


def test_tick_is_monotonic_when_the_wall_clock_goes_backwards() -> None:
    clock = FakeClock(5_000)
    hlc = HLC("cam-a", clock)
    first = hlc.tick()
    clock.now = 1_000  # NTP step backwards
    second = hlc.tick()
    third = hlc.tick()
    assert first < second < third
    assert second == Stamp(5_000, 1, "cam-a")
    clock.now = 6_000
    assert hlc.tick() == Stamp(6_000, 0, "cam-a")


def test_observe_remote_ahead_adopts_its_wall_time() -> None:
    clock = FakeClock(1_000)
    hlc = HLC("cam-a", clock)
    hlc.tick()
    got = hlc.observe(Stamp(2_000, 7, "cam-b"))
    assert got == Stamp(2_000, 8, "cam-a")
    assert got > Stamp(2_000, 7, "cam-b")
    assert hlc.tick() == Stamp(2_000, 9, "cam-a")  # physical still behind: counter runs on


def test_observe_local_ahead_keeps_local_wall_and_bumps_counter() -> None:
    clock = FakeClock(1_000)
    hlc = HLC("cam-a", clock)
    hlc.observe(Stamp(3_000, 0, "cam-b"))  # -> (3000, 1)
    got = hlc.observe(Stamp(2_000, 50, "cam-c"))
    assert got == Stamp(3_000, 2, "cam-a")


def test_observe_same_wall_takes_max_counter_plus_one() -> None:
    clock = FakeClock(1_000)
    hlc = HLC("cam-a", clock)
    hlc.observe(Stamp(3_000, 4, "cam-b"))  # -> (3000, 5)
    assert hlc.observe(Stamp(3_000, 9, "cam-c")) == Stamp(3_000, 10, "cam-a")
    assert hlc.observe(Stamp(3_000, 2, "cam-c")) == Stamp(3_000, 11, "cam-a")


def test_observe_physical_ahead_resets_counter() -> None:
    clock = FakeClock(10_000)
    hlc = HLC("cam-a", clock)
    hlc.tick()
    assert hlc.observe(Stamp(9_000, 99, "cam-b")) == Stamp(10_000, 1, "cam-a")
    clock.now = 20_000
    assert hlc.observe(Stamp(9_000, 99, "cam-b")) == Stamp(20_000, 0, "cam-a")


def test_remote_stamp_far_in_the_future_is_not_adopted() -> None:
    clock = FakeClock(1_000_000)
    hlc = HLC("cam-a", clock)
    before = hlc.tick()
    bad = Stamp(1_000_000 + DAY_MS + 1, 0, "cam-evil")
    with pytest.raises(ClockSkewError) as err:
        hlc.observe(bad)
    assert err.value.remote == bad
    assert err.value.skew_ms == DAY_MS + 1
    assert hlc.last == before  # untouched
    assert hlc.tick() == Stamp(1_000_000, 1, "cam-a")
    # exactly at the limit is still accepted
    assert hlc.observe(Stamp(1_000_000 + DAY_MS, 0, "cam-b")).wall_ms == 1_000_000 + DAY_MS


def test_max_skew_is_configurable() -> None:
    hlc = HLC("cam-a", FakeClock(0), max_skew_ms=10)
    hlc.observe(Stamp(10, 0, "b"))
    with pytest.raises(ClockSkewError):
        hlc.observe(Stamp(11, 0, "b"))


def test_negative_remote_stamp_is_refused() -> None:
    hlc = HLC("cam-a", FakeClock(0))
    with pytest.raises(ValueError):
        hlc.observe(Stamp(-1, 0, "b"))
    with pytest.raises(ValueError):
        hlc.observe(Stamp(0, -1, "b"))


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        HLC("")
    with pytest.raises(ValueError):
        HLC("a", max_skew_ms=-1)


def test_default_clock_is_wall_time() -> None:
    before = wall_clock_ms()
    stamp = HLC("cam-a").tick()
    assert before <= stamp.wall_ms <= wall_clock_ms()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-5_000, 5_000),  # physical clock jump (may go backwards)
            st.one_of(
                st.none(),  # local tick
                st.tuples(st.integers(0, 20_000), st.integers(0, 50), st.sampled_from("bcd")),
            ),
        ),
        max_size=60,
    )
)
def test_every_stamp_exceeds_everything_seen_before(
    events: list[tuple[int, tuple[int, int, str] | None]],
) -> None:
    clock = FakeClock(10_000)
    hlc = HLC("a", clock)
    seen = Stamp(0, 0, "")
    for jump, remote in events:
        clock.now = max(0, clock.now + jump)
        if remote is None:
            got = hlc.tick()
        else:
            stamp = Stamp(*remote)
            got = hlc.observe(stamp)
            assert got > stamp
            seen = max(seen, stamp)
        assert got > seen
        assert got.wall_ms >= clock.now  # never behind the physical clock
        assert got.origin == "a"
        seen = got


def test_thread_safety_gives_unique_increasing_stamps() -> None:
    hlc = HLC("cam-a", FakeClock(42))
    results: list[list[Stamp]] = [[] for _ in range(4)]

    def work(out: list[Stamp]) -> None:
        for _ in range(500):
            out.append(hlc.tick())

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps = [s for r in results for s in r]
    assert len(set(stamps)) == 2000
    assert all(r == sorted(r) for r in results)
