"""FaceTracks: IoU association and per-track identity voting (synthetic sequences)."""

from __future__ import annotations

import pytest

from agent.vision.faces import UNKNOWN, FaceTracks, box_iou

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
