"""Event detection from synthetic result sequences (DESIGN §4 event/{face,class,track})."""

from __future__ import annotations

from typing import Any

import pytest

from agent.events import Event, EventDetector
from agent.homeassistant.mirror import Mirror


def faces(ts: float, *labels: str, seq: int = 0) -> dict[str, Any]:
    return {
        "v": 1,
        "dev": "cam1",
        "seq": seq,
        "ts": ts,
        "faces": [
            {
                "box": [10.0 * i, 20.0, 30.0, 40.0],
                "score": 0.9,
                "label": lb,
                "class_id": 0 if lb == "unknown" else 1,
                "similarity": 0.8,
                "track_id": i,
            }
            for i, lb in enumerate(labels)
        ],
    }


def classify(ts: float, label: str) -> dict[str, Any]:
    return {"ts": ts, "seq": 1, "label": label, "class_id": 2, "distance": 3.5, "score": 0.7}


def track(ts: float, state: str, target: int = 1) -> dict[str, Any]:
    return {"ts": ts, "seq": 1, "box": [1.0, 2.0, 3.0, 4.0], "score": 0.95, "state": state, "target": target}


def kinds(events: list[Event]) -> list[tuple[str, str, str | None]]:
    return [(e.kind, e.type, e.body.get("label")) for e in events]


def test_face_appears_once_and_leaves_after_the_debounce() -> None:
    d = EventDetector("cam1", debounce=2.0, class_frames=3)
    assert kinds(d.feed("faces", faces(0.0, "alice"))) == [("face", "appeared", "alice")]
    assert d.feed("faces", faces(0.5, "alice")) == []
    assert d.feed("faces", faces(1.0)) == []  # unseen for 0 s
    assert d.feed("faces", faces(2.4)) == []  # unseen for 1.9 s: still present
    assert set(d.present()) == {"alice"}
    left = d.feed("faces", faces(2.6))
    assert kinds(left) == [("face", "left", "alice")]
    body = left[0].body
    assert body["since"] == 0.0 and body["last_seen"] == 0.5 and body["duration"] == 0.5
    assert (body["v"], body["dev"]) == (1, "cam1")
    assert d.present() == {}
    assert kinds(d.feed("faces", faces(3.0, "alice"))) == [("face", "appeared", "alice")]


def test_coming_back_within_the_debounce_is_no_event() -> None:
    d = EventDetector("cam1", debounce=3.0, class_frames=1)
    seq = [faces(0, "bob"), faces(1), faces(2), faces(2.9, "bob"), faces(4), faces(5.8), faces(6.0)]
    out = [kinds(d.feed("faces", r)) for r in seq]
    assert out == [[("face", "appeared", "bob")], [], [], [], [], [], [("face", "left", "bob")]]


def test_identities_are_independent_and_unknown_is_one_identity() -> None:
    d = EventDetector("cam1", debounce=1.0, class_frames=1)
    first = d.feed("faces", faces(0, "alice", "unknown", "unknown"))
    assert kinds(first) == [("face", "appeared", "alice"), ("face", "appeared", "unknown")]
    assert first[1].body["count"] == 2
    assert kinds(d.feed("faces", faces(0.5, "bob", "unknown"))) == [("face", "appeared", "bob")]
    assert kinds(d.feed("faces", faces(1.2, "bob"))) == [("face", "left", "alice")]
    assert kinds(d.feed("faces", faces(1.6, "bob"))) == [("face", "left", "unknown")]
    assert set(d.present()) == {"bob"}


def test_appeared_carries_the_best_face() -> None:
    d = EventDetector("cam1", debounce=1.0, class_frames=1)
    r = faces(0, "alice", "alice")
    r["faces"][1]["similarity"] = 0.95
    (ev,) = d.feed("faces", r)
    assert ev.body["similarity"] == 0.95 and ev.body["box"] == [10.0, 20.0, 30.0, 40.0]
    assert ev.body["track_id"] == 1 and ev.body["count"] == 2 and ev.body["class_id"] == 1


def test_tick_expires_without_frames() -> None:
    d = EventDetector("cam1", debounce=2.0, class_frames=1)
    d.feed("faces", faces(10.0, "alice", seq=7))
    assert d.tick(11.0) == []
    (ev,) = d.tick(12.5)
    assert (ev.type, ev.body["label"], ev.body["seq"], ev.body["ts"]) == ("left", "alice", 7, 12.5)
    assert d.tick(20.0) == []


def test_held_identities_stay_while_results_only_come_on_change() -> None:
    d = EventDetector("cam1", debounce=1.0, class_frames=1, hold_last=True)
    d.feed("faces", faces(0, "alice"))
    assert d.tick(50.0) == []  # the last result still has alice: the scene did not change
    d.release_held()  # e.g. the faces pipeline was switched off
    assert kinds(d.tick(51.0)) == [("face", "left", "alice")]


def test_zero_debounce_leaves_on_the_next_frame_without_the_face() -> None:
    d = EventDetector("cam1", debounce=0.0, class_frames=1)
    d.feed("faces", faces(0, "alice"))
    assert kinds(d.feed("faces", faces(0.1))) == [("face", "left", "alice")]


def test_class_changes_only_after_class_frames_consecutive_frames() -> None:
    d = EventDetector("cam1", debounce=1.0, class_frames=3)
    labels = ["cat", "cat", "cat", "cat", "dog", "cat", "dog", "dog", "dog", "dog"]
    out = [kinds(d.feed("classify", classify(i, lb))) for i, lb in enumerate(labels)]
    assert out[2] == [("class", "changed", "cat")]
    assert out[8] == [("class", "changed", "dog")]
    assert sum(len(o) for o in out) == 2
    assert d.current_class == "dog"
    ev = d.feed("classify", classify(20, "unknown")) + d.feed("classify", classify(21, "unknown"))
    ev += d.feed("classify", classify(22, "unknown"))
    assert [(e.body["label"], e.body["previous"]) for e in ev] == [("unknown", "dog")]
    assert (ev[0].body["distance"], ev[0].body["score"], ev[0].body["class_id"]) == (3.5, 0.7, 2)


def test_class_first_answer_is_a_change_from_none() -> None:
    d = EventDetector("cam1", debounce=1.0, class_frames=1)
    (ev,) = d.feed("classify", classify(0, "cat"))
    assert ev.body["previous"] is None


def test_track_lost_and_found() -> None:
    d = EventDetector("cam1", debounce=1.0, class_frames=1)
    states = ["tracking", "tracking", "lost", "searching", "lost", "tracking", "searching", "tracking"]
    out = [kinds(d.feed("track", track(i, s))) for i, s in enumerate(states)]
    flat = [k[1] for o in out for k in o]
    assert flat == ["lost", "found", "lost", "found"]
    assert out[2] and out[5] and not out[0]  # the start of a track is not "found"


def test_a_new_target_after_a_stop_is_not_found() -> None:
    d = EventDetector("cam1", debounce=1.0, class_frames=1)
    d.feed("track", track(0, "tracking"))
    d.feed("track", track(1, "lost"))
    # track/stop, then a new track/start: its results carry the next target
    assert d.feed("track", track(2, "tracking", target=2)) == []


def test_a_restarted_track_is_not_found() -> None:
    """track/start replacing a lost target without a track/stop: the new target's results carry a
    new ``target`` and its first one is no ``found``."""
    d = EventDetector("cam1", debounce=1.0, class_frames=1)
    d.feed("track", track(0, "tracking", target=1))
    assert kinds(d.feed("track", track(1, "lost", target=1))) == [("track", "lost", None)]
    assert d.feed("track", track(2, "tracking", target=2)) == []
    assert kinds(d.feed("track", track(3, "lost", target=2))) == [("track", "lost", None)]


def test_other_kinds_and_bad_values_are_ignored() -> None:
    d = EventDetector("cam1", debounce=1.0, class_frames=1)
    assert d.feed("segments", {"ts": 0, "objects": []}) == []
    assert d.feed("track", {"ts": 0, "state": "weird"}) == []
    assert d.feed("classify", {"ts": 0, "label": None}) == []
    assert d.feed("faces", {"ts": 0, "faces": [{"label": None}]})[0].body["label"] == "unknown"
    with pytest.raises(ValueError):
        EventDetector("cam1", debounce=-1, class_frames=1)


def test_counts() -> None:
    d = EventDetector("cam1", debounce=0.0, class_frames=1)
    d.feed("faces", faces(0, "a"))
    d.feed("faces", faces(1))
    assert d.counts == {"face/appeared": 1, "face/left": 1}


# -- the JSON mirror of those events (what Home Assistant reads) -------------------------------
def test_mirror_from_events_and_results() -> None:
    d = EventDetector("cam1", debounce=2.0, class_frames=1)
    m = Mirror(debounce=2.0, refresh=10.0)
    r = faces(100.0, "Alice Smith")
    events = d.feed("faces", r)
    pubs = {p.path: p for p in m.events(events) + m.result("faces", r, d.present())}
    assert pubs["event/face"].doc["event_type"] == "alice_smith" and not pubs["event/face"].retain
    assert pubs["person"].doc["label"] == "Alice Smith" and pubs["person"].retain
    assert pubs["person"].doc["time"].startswith("1970-01-01T00:01:40")
    assert pubs["presence"].doc == {
        "person": "ON",
        "known_face": "ON",
        "people": 0,
        "faces": 1,
        "known": ["Alice Smith"],
    }
    # nothing changed: nothing published
    r2 = faces(100.5, "Alice Smith")
    assert m.events(d.feed("faces", r2)) + m.result("faces", r2, d.present()) == []
    # an unknown face: an event, no "person" update, presence known_face stays on
    r3 = faces(101.0, "Alice Smith", "unknown")
    pubs = {p.path: p for p in m.events(d.feed("faces", r3)) + m.result("faces", r3, d.present())}
    assert pubs["event/face"].doc["event_type"] == "unknown" and "person" not in pubs
    assert "presence" not in pubs  # only the face count changed: throttled by refresh
    assert [p.doc["faces"] for p in m.flush(200.0)] == [2]
    # everyone leaves: presence OFF at once
    out = m.events(d.tick(300.0))
    assert out == []  # "left" is not a Home Assistant event
    (pres,) = m.tick(300.0, d.present(), track_active=True, segment_on=True)
    assert pres.doc["person"] == "OFF" and pres.doc["known_face"] == "OFF"


def test_mirror_people_count_class_and_tracker() -> None:
    m = Mirror(debounce=2.0, refresh=1.0)
    seg = {"ts": 10.0, "objects": [{"label": "person"}, {"label": "person"}, {"label": "dog"}]}
    (pres,) = m.result("segments", seg, {})
    assert (pres.doc["people"], pres.doc["person"]) == (2, "ON")
    # the segmentation stops seeing people: person present holds for the debounce
    assert m.result("segments", {"ts": 10.5, "objects": []}, {}) == []  # count throttled (1 s)
    (pres,) = m.result("segments", {"ts": 12.5, "objects": []}, {})
    assert (pres.doc["people"], pres.doc["person"]) == (0, "OFF")
    # class: the state follows the debounced event; distance/score refresh with the frames
    d = EventDetector("cam1", debounce=1.0, class_frames=1)
    (cls,) = m.events(d.feed("classify", classify(20.0, "cat")))
    assert cls.path == "class" and cls.doc["label"] == "cat" and cls.doc["previous"] is None
    assert m.result("classify", {**classify(20.5, "cat"), "distance": 4.0}, {}) == []  # throttled
    (upd,) = m.result("classify", {**classify(21.5, "cat"), "distance": 5.0}, {})
    assert upd.doc["distance"] == 5.0 and upd.doc["label"] == "cat"
    # tracker: a state change at once, the score throttled, idle when stopped
    (t1,) = m.result("track", track(30.0, "tracking"), {})
    assert t1.doc["state"] == "tracking"
    assert m.result("track", {**track(30.2, "tracking"), "score": 0.5}, {}) == []
    (t2,) = m.result("track", track(30.3, "lost"), {})
    assert t2.doc["state"] == "lost"
    pubs = m.tick(31.0, {}, track_active=False, segment_on=False)
    assert any(p.path == "track" and p.doc["state"] == "idle" for p in pubs)
    ev = EventDetector("cam1", debounce=1.0, class_frames=1)
    ev.feed("track", track(0, "tracking"))
    (lost,) = m.events(ev.feed("track", track(1, "lost")))
    assert lost.path == "event/track" and lost.doc["event_type"] == "lost" and not lost.retain


def test_mirror_controls_and_forget() -> None:
    m = Mirror(debounce=1.0, refresh=1.0)
    th, pipes = {"face": {"match": 0.7}}, {"faces": True}
    assert [p.path for p in m.controls(th, pipes, 0.0)] == ["thresholds", "pipelines"]
    assert m.controls(th, pipes, 0.1) == []  # unchanged
    assert [p.path for p in m.controls({"face": {"match": 0.8}}, pipes, 0.2)] == ["thresholds"]
    assert {p.path for p in m.snapshot()} == {"thresholds", "pipelines"}
    m.forget()
    assert m.snapshot() == []
    assert len(m.controls(th, pipes, 0.3)) == 2
