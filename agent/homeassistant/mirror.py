"""JSON mirrors for Home Assistant on ``maix/{dev}/ha/...``, built from results, events and state.

Home Assistant templates read JSON, and a sensor that changed 30 times a second would flood its
recorder, so :class:`Mirror` publishes a document only when it changes: state changes at once
(a class changed, someone appeared, the tracker lost its target), changing numbers (distance,
score, people count) at most every ``refresh`` seconds, the last pending value being flushed by
:meth:`Mirror.flush`. It returns :class:`Publication` values; the caller publishes them.

Documents (retained unless noted):

* ``person``: the last recognised (known) person: ``label, class_id, similarity, box, time``
* ``class``: the current class (debounced like ``event/class``): ``label, class_id, distance, score, time``
* ``presence``: ``person`` / ``known_face`` (``ON``/``OFF``), ``people`` (segmentation objects
  labelled person), ``faces`` (identities present), ``known`` (their labels)
* ``track``: ``state`` (tracking, lost, searching, idle), ``score``, ``box``
* ``thresholds``, ``pipelines``: the live controls
* ``event/face``, ``event/track`` (not retained): ``{event_type, …}`` for HA event entities
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.events import Event
from agent.homeassistant.discovery import (
    CLASS,
    EVENT_FACE,
    EVENT_TRACK,
    PERSON,
    PIPELINES,
    PRESENCE,
    THRESHOLDS,
    TRACK,
    slug,
)
from agent.vision.faces import UNKNOWN

PERSON_LABEL = "person"  # the COCO class counted as people


@dataclass(frozen=True)
class Publication:
    path: str  # under maix/{dev}/ha/
    doc: dict[str, Any]
    retain: bool = True


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _r(value: Any, digits: int = 4) -> Any:
    return round(float(value), digits) if isinstance(value, (int, float)) else value


def _on(flag: bool) -> str:
    return "ON" if flag else "OFF"


class Mirror:
    def __init__(self, *, debounce: float, refresh: float) -> None:
        self.debounce = debounce
        self.refresh = refresh
        self._lock = threading.Lock()
        self._last: dict[str, dict[str, Any]] = {}
        self._sent_at: dict[str, float] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._people = 0
        self._people_seen_at = -math.inf
        self._class: str | None = None

    # -- publishing policy --------------------------------------------------------------------
    def _offer(self, path: str, doc: dict[str, Any], now: float, *, urgent: bool) -> list[Publication]:
        if self._last.get(path) == doc:
            self._pending.pop(path, None)
            return []
        if urgent or now - self._sent_at.get(path, -math.inf) >= self.refresh:
            self._pending.pop(path, None)
            self._last[path], self._sent_at[path] = doc, now
            return [Publication(path, doc)]
        self._pending[path] = doc
        return []

    def flush(self, now: float) -> list[Publication]:
        """Pending (throttled) documents whose refresh time has come."""
        with self._lock:
            out = []
            for path, doc in list(self._pending.items()):
                out += self._offer(path, doc, now, urgent=False)
            return out

    def forget(self) -> None:
        """After a removal: the next documents are sent whatever was sent before."""
        with self._lock:
            self._last.clear()
            self._sent_at.clear()
            self._pending.clear()

    # -- inputs ---------------------------------------------------------------------------------
    def events(self, events: list[Event]) -> list[Publication]:
        out: list[Publication] = []
        with self._lock:
            for ev in events:
                b = ev.body
                when = iso_time(float(b["ts"]))
                if ev.kind == "face" and ev.type == "appeared":
                    info = {
                        "label": b["label"],
                        "class_id": b.get("class_id", 0),
                        "similarity": b.get("similarity"),
                        "box": b.get("box"),
                        "time": when,
                    }
                    out.append(Publication(EVENT_FACE, {"event_type": slug(b["label"]), **info}, retain=False))
                    if b["label"] != UNKNOWN:
                        out += self._offer(PERSON, info, float(b["ts"]), urgent=True)
                elif ev.kind == "class":
                    self._class = str(b["label"])
                    doc = {
                        "label": b["label"],
                        "class_id": b.get("class_id"),
                        "distance": _r(b.get("distance")),
                        "score": _r(b.get("score")),
                        "previous": b.get("previous"),
                        "time": when,
                    }
                    out += self._offer(CLASS, doc, float(b["ts"]), urgent=True)
                elif ev.kind == "track":
                    doc = {"event_type": ev.type, "state": b.get("state"), "box": b.get("box"), "time": when}
                    out.append(Publication(EVENT_TRACK, doc, retain=False))
        return out

    def result(self, kind: str, msg: dict[str, Any], present: dict[str, dict[str, Any]]) -> list[Publication]:
        now = float(msg["ts"])
        out: list[Publication] = []
        with self._lock:
            if kind == "classify" and self._class is not None and msg.get("label") == self._class:
                last = self._last.get(CLASS, {})
                doc = {**last, "distance": _r(msg.get("distance")), "score": _r(msg.get("score"))}
                out += self._offer(CLASS, doc, now, urgent=False)
            elif kind == "segments":
                objects = msg.get("objects") or []
                self._people = sum(1 for o in objects if o.get("label") == PERSON_LABEL)
                if self._people:
                    self._people_seen_at = now
            elif kind == "track":
                doc = {"state": msg.get("state"), "score": _r(msg.get("score")), "box": msg.get("box")}
                urgent = self._last.get(TRACK, {}).get("state") != doc["state"]
                out += self._offer(TRACK, doc, now, urgent=urgent)
            if kind in ("faces", "segments"):
                out += self._presence(present, now)
        return out

    def _presence(self, present: dict[str, dict[str, Any]], now: float) -> list[Publication]:
        known = sorted(label for label in present if label != UNKNOWN)
        seen_by_segment = now - self._people_seen_at < self.debounce
        doc = {
            "person": _on(bool(present) or seen_by_segment),
            "known_face": _on(bool(known)),
            "people": self._people,
            "faces": len(present),
            "known": known,
        }
        last = self._last.get(PRESENCE, {})
        urgent = any(last.get(k) != doc[k] for k in ("person", "known_face", "known"))
        return self._offer(PRESENCE, doc, now, urgent=urgent)

    def tick(
        self, now: float, present: dict[str, dict[str, Any]], *, track_active: bool, segment_on: bool
    ) -> list[Publication]:
        """Periodic: presence that aged out, the tracker going idle, pending refreshes."""
        out: list[Publication] = []
        with self._lock:
            if not segment_on:
                self._people = 0
            if not track_active:
                out += self._offer(TRACK, {"state": "idle", "score": None, "box": None}, now, urgent=True)
            out += self._presence(present, now)
        return out + self.flush(now)

    def controls(self, thresholds: dict[str, Any], pipelines: dict[str, bool], now: float) -> list[Publication]:
        with self._lock:
            return [
                *self._offer(THRESHOLDS, thresholds, now, urgent=True),
                *self._offer(PIPELINES, pipelines, now, urgent=True),
            ]

    def snapshot(self) -> list[Publication]:
        """Every retained document sent so far (re-sent after a reconnect or a removal)."""
        with self._lock:
            return [Publication(path, doc) for path, doc in self._last.items()]
