"""Events from per-frame results (DESIGN §4 ``event/{face,class,track}``).

:class:`EventDetector` turns the stream of results into the few things that *happen*:

* ``face``: an identity (an enrolled label, or ``unknown`` for any unrecognised face) ``appeared``
  the first frame it is seen, and ``left`` once it has been unseen for ``debounce`` seconds. An
  identity that comes back sooner was never gone: no event. The labels come from the faces
  pipeline's per-track voting, so a single-frame misrecognition does not appear at all.
  An unknown face that stays is put in the review queue; its result entry then carries an
  ``unknown_id`` and ``queued`` is published once per id (``label: unknown``, ``unknown_id``,
  ``track_id``, ``box``, ``similarity``), so that it can be enrolled later (``face/enrol
  {label, unknown_id}``); ``appeared`` carries the ``unknown_id`` when its face already has one,
  and ``left`` of ``unknown`` lists the ``unknown_ids`` seen while it was present.
* ``class``: the classifier's answer ``changed`` once a new label has held for ``class_frames``
  consecutive frames (the first answer after start counts as a change from ``None``).
* ``track``: the target was ``lost`` (state tracking → lost/searching) or ``found`` again
  (lost/searching → tracking). Starting a track is not ``found``, even when it replaces a lost
  target: track results carry the ``target`` they belong to (counted per ``track/start``).

Pure state machine: no MQTT, no clock of its own (times come from the results' ``ts`` or the
caller's ``now``). Thread-safe: the vision worker feeds it, the state loop ticks it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from agent.vision.faces import UNKNOWN

SCHEMA = 1


@dataclass(frozen=True)
class Event:
    kind: str  # face | class | track: the topic's last level
    body: dict[str, Any]  # the msgpack map published on event/{kind}

    @property
    def type(self) -> str:
        return str(self.body["type"])


@dataclass
class _Presence:
    label: str
    since: float
    last_seen: float
    seq: int
    face: dict[str, Any] = field(default_factory=dict)
    count: int = 1
    unknown_ids: list[str] = field(default_factory=list)


def _round_box(box: Any) -> list[float]:
    return [round(float(v), 1) for v in box] if box is not None else []


class EventDetector:
    def __init__(self, dev: str, *, debounce: float, class_frames: int, hold_last: bool = False) -> None:
        if debounce < 0 or class_frames < 1:
            raise ValueError("need debounce >= 0 and class_frames >= 1")
        self.dev = dev
        self.debounce = debounce
        self.class_frames = class_frames
        # Results published "on change" stop coming while the scene is still: then the identities
        # of the last faces result stay present until a result without them (or release_held).
        self.hold_last = hold_last
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._present: dict[str, _Presence] = {}
        self._class: str | None = None
        self._candidate: str | None = None
        self._candidate_frames = 0
        self._tracking: bool | None = None  # None: no result of the current target yet
        self._target: object = None  # the track/start the last track result belonged to
        self.counts: dict[str, int] = {}

    # -- reads ------------------------------------------------------------------------------
    def present(self) -> dict[str, dict[str, Any]]:
        """Identities present now (debounced): label → the face it was last seen as."""
        with self._lock:
            return {p.label: {**p.face, "since": p.since, "last_seen": p.last_seen} for p in self._present.values()}

    @property
    def current_class(self) -> str | None:
        return self._class

    # -- feeding ----------------------------------------------------------------------------
    def feed(self, kind: str, result: dict[str, Any]) -> list[Event]:
        """Events caused by one result message (``result/{kind}``)."""
        with self._lock:
            if kind == "faces":
                events = self._faces(result)
            elif kind == "classify":
                events = self._classify(result)
            elif kind == "track":
                events = self._track(result)
            else:
                events = []
        self._count(events)
        return events

    def tick(self, now: float) -> list[Event]:
        """``left`` events for identities unseen for ``debounce`` seconds (no frames needed)."""
        with self._lock:
            events = self._expire(now, None, self._held)
        self._count(events)
        return events

    def release_held(self) -> None:
        """The faces pipeline stopped: held identities may now leave."""
        with self._lock:
            self._held = set()

    # -- internals (lock held) --------------------------------------------------------------
    def _count(self, events: list[Event]) -> None:
        for e in events:
            key = f"{e.kind}/{e.type}"
            self.counts[key] = self.counts.get(key, 0) + 1

    def _event(self, kind: str, seq: int | None, ts: float, **body: Any) -> Event:
        return Event(kind, {"v": SCHEMA, "dev": self.dev, "seq": seq, "ts": ts, **body})

    def _faces(self, result: dict[str, Any]) -> list[Event]:
        ts, seq = float(result["ts"]), result.get("seq")
        events: list[Event] = []
        seen: dict[str, list[dict[str, Any]]] = {}
        for face in result.get("faces") or []:
            seen.setdefault(str(face.get("label") or UNKNOWN), []).append(face)
        for label, faces in seen.items():
            best = max(faces, key=lambda f: float(f.get("similarity") or 0.0))
            info = {
                "class_id": int(best.get("class_id") or 0),
                "similarity": round(float(best.get("similarity") or 0.0), 4),
                "box": _round_box(best.get("box")),
                "track_id": best.get("track_id"),
                **({"unknown_id": best["unknown_id"]} if best.get("unknown_id") else {}),
            }
            p = self._present.get(label)
            if p is None:
                p = self._present[label] = _Presence(label, ts, ts, seq or 0, info, len(faces))
                events.append(self._event("face", seq, ts, type="appeared", label=label, count=len(faces), **info))
                if "unknown_id" in info:
                    p.unknown_ids.append(info["unknown_id"])
            else:
                p.last_seen, p.seq, p.face, p.count = ts, seq or p.seq, info, len(faces)
            events += self._queued(p, faces, seq, ts)
        if self.hold_last:
            self._held = set(seen)
        events += self._expire(ts, seq, set(seen))
        return events

    def _queued(self, p: _Presence, faces: list[dict[str, Any]], seq: int | None, ts: float) -> list[Event]:
        """``queued`` for each unknown face whose review id is new in this presence."""
        events = []
        for face in faces:
            uid = face.get("unknown_id")
            if not uid or uid in p.unknown_ids:
                continue
            p.unknown_ids.append(uid)
            events.append(
                self._event(
                    "face",
                    seq,
                    ts,
                    type="queued",
                    label=UNKNOWN,
                    class_id=0,
                    unknown_id=uid,
                    track_id=face.get("track_id"),
                    box=_round_box(face.get("box")),
                    similarity=round(float(face.get("similarity") or 0.0), 4),
                )
            )
        return events

    def _expire(self, now: float, seq: int | None, seen: set[str]) -> list[Event]:
        events = []
        for label, p in list(self._present.items()):
            if label in seen or now - p.last_seen < self.debounce:
                continue
            del self._present[label]
            events.append(
                self._event(
                    "face",
                    seq if seq is not None else p.seq,
                    now,
                    type="left",
                    label=label,
                    class_id=p.face.get("class_id", 0),
                    since=p.since,
                    last_seen=p.last_seen,
                    duration=round(p.last_seen - p.since, 3),
                    **({"unknown_ids": p.unknown_ids} if p.unknown_ids else {}),
                )
            )
        return events

    def _classify(self, result: dict[str, Any]) -> list[Event]:
        label = result.get("label")
        if label is None:
            return []
        label = str(label)
        if label == self._class:
            self._candidate, self._candidate_frames = None, 0
            return []
        if label == self._candidate:
            self._candidate_frames += 1
        else:
            self._candidate, self._candidate_frames = label, 1
        if self._candidate_frames < self.class_frames:
            return []
        previous, self._class = self._class, label
        self._candidate, self._candidate_frames = None, 0
        return [
            self._event(
                "class",
                result.get("seq"),
                float(result["ts"]),
                type="changed",
                label=label,
                previous=previous,
                class_id=result.get("class_id"),
                distance=result.get("distance"),
                score=result.get("score"),
            )
        ]

    def _track(self, result: dict[str, Any]) -> list[Event]:
        state = str(result.get("state") or "")
        if state not in ("tracking", "lost", "searching"):
            return []
        tracking = state == "tracking"
        target = result.get("target")
        if target != self._target:  # a new track/start: its first result is no "found"
            self._target, self._tracking = target, None
        was, self._tracking = self._tracking, tracking
        if was is None or was == tracking:
            return []
        return [
            self._event(
                "track",
                result.get("seq"),
                float(result["ts"]),
                type="found" if tracking else "lost",
                state=state,
                box=_round_box(result.get("box")),
                score=result.get("score"),
            )
        ]
