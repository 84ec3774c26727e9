"""FaceTracks: IoU association and per-track identity voting (synthetic sequences)."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.vision.faces import UNKNOWN, FaceTracks, box_iou

Box = tuple[float, float, float, float]
A = (100.0, 100.0, 80.0, 100.0)
B = (400.0, 120.0, 80.0, 100.0)


def moved(box: tuple[float, float, float, float], dx: float) -> tuple[float, float, float, float]:
    return (box[0] + dx, box[1], box[2], box[3])


def labels_over(tracks: FaceTracks, seq: list[str], box: tuple[float, float, float, float] = A) -> list[str]:
    return [tracks.update([box], [label])[0][1] for label in seq]


def test_label_needs_majority_votes() -> None:
    tracks = FaceTracks(window=5, majority=3)
    assert labels_over(tracks, ["bob", "bob", "bob", "bob"]) == [UNKNOWN, UNKNOWN, "bob", "bob"]


def test_alternating_votes_reach_majority_late() -> None:
    tracks = FaceTracks(window=5, majority=3)
    got = labels_over(tracks, ["bob", "ann", "bob", "ann", "bob"])
    assert got == [UNKNOWN] * 4 + ["bob"]


def test_flicker_does_not_flip_a_published_label() -> None:
    tracks = FaceTracks(window=5, majority=3)
    got = labels_over(tracks, ["bob"] * 3 + ["ann", UNKNOWN, "bob", "ann", UNKNOWN, "bob"])
    assert got[2:] == ["bob"] * 7


def test_new_majority_replaces_the_label() -> None:
    tracks = FaceTracks(window=5, majority=3)
    got = labels_over(tracks, ["bob"] * 5 + ["ann"] * 3)
    assert got[-3:] == ["bob", "bob", "ann"]
    got = labels_over(tracks, [UNKNOWN] * 3)
    assert got[-1] == UNKNOWN  # a face that stops matching goes back to unknown


def test_track_ids_stable_while_boxes_move() -> None:
    tracks = FaceTracks()
    ids_a: list[int] = []
    ids_b: list[int] = []
    for step in range(20):
        out = tracks.update([moved(A, 10 * step), moved(B, -5 * step)], ["ann", "bob"])
        ids_a.append(out[0][0])
        ids_b.append(out[1][0])
    assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1 and ids_a[0] != ids_b[0]
    # order of the faces in a frame does not matter
    out = tracks.update([moved(B, -100), moved(A, 200)], ["bob", "ann"])
    assert [tid for tid, _ in out] == [ids_b[0], ids_a[0]]
    assert [lb for _, lb in out] == ["bob", "ann"]


def test_far_jump_starts_a_new_track() -> None:
    tracks = FaceTracks()
    first = tracks.update([A], ["bob"])[0][0]
    second = tracks.update([moved(A, 300)], ["bob"])[0][0]
    assert first != second
    assert len(tracks) == 2


def test_tracks_expire_after_missed_frames() -> None:
    tracks = FaceTracks(max_missed=2)
    labels_over(tracks, ["bob"] * 3)
    tid, label = tracks.update([A], ["bob"])[0]
    assert label == "bob"
    tracks.update([], [])
    tracks.update([], [])
    assert tracks.update([A], ["ann"])[0] == (tid, "bob")  # survived 2 misses
    for _ in range(3):
        tracks.update([], [])
    assert len(tracks) == 0
    new_id, label = tracks.update([A], ["bob"])[0]
    assert new_id != tid and label == UNKNOWN  # a fresh track votes again


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        FaceTracks(window=3, majority=4)
    with pytest.raises(ValueError):
        FaceTracks().update([A], [])


def test_box_iou() -> None:
    assert box_iou(A, A) == pytest.approx(1.0)
    assert box_iou(A, B) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


class _Spelled:
    """The voting rule spelled out the long way (a Counter over each track's last votes, a
    set of the tracks seen): the oracle for FaceTracks' own, shorter bookkeeping."""

    def __init__(self, window: int, majority: int, max_missed: int) -> None:
        self.window, self.majority, self.max_missed = window, majority, max_missed
        self.tracks: list[dict[str, Any]] = []
        self.next_id = 1

    def update(self, boxes: list[Box], labels: list[str | None]) -> list[tuple[int, str]]:
        pairs = sorted(
            ((box_iou(t["box"], b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        owner: list[dict[str, Any] | None] = [None] * len(boxes)
        used: set[int] = set()
        for iou, ti, bi in pairs:
            if iou < 0.3:
                break
            if ti not in used and owner[bi] is None:
                used.add(ti)
                owner[bi] = self.tracks[ti]
        seen, out = set(), []
        for box, label, track in zip(boxes, labels, owner, strict=True):
            if track is None:
                track = {"id": self.next_id, "votes": deque(maxlen=self.window), "published": UNKNOWN}
                self.next_id += 1
                self.tracks.append(track)
            track["box"], track["missed"] = box, 0
            if label is not None:
                track["votes"].append(label)
                winner, count = Counter(track["votes"]).most_common(1)[0]
                if count >= self.majority:
                    track["published"] = winner
            seen.add(track["id"])
            out.append((track["id"], track["published"]))
        for track in self.tracks:
            if track["id"] not in seen:
                track["missed"] += 1
        self.tracks = [t for t in self.tracks if t["missed"] <= self.max_missed]
        return out


@settings(max_examples=150, deadline=None)
@given(
    window=st.integers(1, 6),
    data=st.data(),
    frames=st.lists(
        st.lists(
            st.tuples(st.sampled_from([0.0, 30.0, 60.0, 300.0, 320.0]), st.sampled_from([None, "a", "b", UNKNOWN])),
            max_size=4,
        ),
        max_size=25,
    ),
)
def test_the_same_as_the_rule_spelled_out(
    window: int, data: st.DataObject, frames: list[list[tuple[float, str | None]]]
) -> None:
    """Random faces coming, moving, overlapping and going, with ties in the votes."""
    majority = data.draw(st.integers(1, window))
    max_missed = data.draw(st.integers(0, 3))
    tracks = FaceTracks(window=window, majority=majority, max_missed=max_missed)
    oracle = _Spelled(window, majority, max_missed)
    for faces in frames:
        boxes: list[Box] = [(x, 50.0, 80.0, 100.0) for x, _ in faces]
        labels = [label for _, label in faces]
        assert tracks.update(boxes, labels) == oracle.update(boxes, labels)
        assert len(tracks) == len(oracle.tracks)
