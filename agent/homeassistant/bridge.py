"""The Home Assistant side of one agent: discovery lifecycle, JSON mirrors, HA's control topics.

* Discovery is published (retained) on every connection and again, after a short random delay,
  whenever Home Assistant announces itself (``{prefix}/status`` = ``online``, its birth message).
  With ``homeassistant.enabled: false`` the same config topics get empty retained payloads on
  connection instead, so a camera that used to be discovered disappears from Home Assistant.
* A change of the enrolled face labels re-publishes the ``face`` event entity (its event types).
* Writes on ``maix/{dev}/ha/set/...`` (numbers, switches, buttons) become ordinary protocol
  commands submitted to the command dispatcher (declared as sent by the client ``homeassistant``):
  same queue, validation, handlers and replies.

Route sinks only enqueue; discovery is published by this bridge's own thread.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.events import Event
from agent.homeassistant.discovery import (
    RETAINED_MIRRORS,
    DeviceInfo,
    HaTopics,
    command_for,
    discovery,
    face_event_discovery,
    face_event_types,
    removal_topics,
)
from agent.homeassistant.mirror import Mirror, Publication
from agent.mqtt import codec
from agent.mqtt.topics import Message, Route

log = logging.getLogger(__name__)

Publish = Callable[..., None]  # (topic, payload, qos, retain)


class HomeAssistantBridge:
    def __init__(
        self,
        *,
        enabled: bool,
        info: DeviceInfo,
        topics: HaTopics,
        publish: Publish,
        submit: Callable[[str, str, bytes], None],
        face_labels: Callable[[], list[str]],
        controls: Callable[[], tuple[dict[str, Any], dict[str, bool]]],
        debounce: float,
        refresh: float,
        birth_jitter: float = 1.0,
        camera: bool = False,
    ) -> None:
        self.enabled = enabled
        self.camera = camera
        self.info = info
        self.topics = topics
        self.publish = publish
        self.submit = submit
        self.face_labels = face_labels
        self.controls = controls
        self.birth_jitter = birth_jitter
        self.mirror = Mirror(debounce=debounce, refresh=refresh)
        self.counts: dict[str, int] = {"announced": 0, "removed": 0, "births": 0, "commands": 0, "ignored": 0}
        self._cond = threading.Condition()
        self._jobs: set[str] = set()
        self._event_types: list[str] | None = None

    # -- routes (network thread: enqueue only) ----------------------------------------------
    def routes(self) -> list[Route]:
        if not self.enabled:
            return []
        return [
            Route(self.topics.birth, 1, self._on_birth, "ha-birth"),
            Route(self.topics.set_filter, 1, self._on_set, "ha-set"),
        ]

    def _on_birth(self, msg: Message) -> None:
        if msg.payload.strip() == b"online":
            self.counts["births"] += 1
            self._enqueue("birth")

    def _on_set(self, msg: Message) -> None:
        path = self.topics.set_path(msg.topic)
        target = command_for(path, msg.payload) if path is not None else None
        if target is None:
            self.counts["ignored"] += 1
            log.warning("ignoring Home Assistant write on %s: not a known control", msg.topic)
            return
        family, command, request = target
        self.counts["commands"] += 1
        self.submit(family, command, json.dumps(request).encode())

    # -- lifecycle --------------------------------------------------------------------------
    def on_connected(self) -> None:
        self._enqueue("announce" if self.enabled else "remove")

    def labels_changed(self) -> None:
        if self.enabled:
            self._enqueue("labels")

    def _enqueue(self, job: str) -> None:
        with self._cond:
            self._jobs.add(job)
            self._cond.notify()

    def start(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self._run, args=(stop,), name="homeassistant", daemon=True)
        t.start()
        return t

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                if not self._jobs:
                    self._cond.wait(0.2)
                jobs, self._jobs = self._jobs, set()
            if not jobs:
                continue
            try:
                if "birth" in jobs and "announce" not in jobs:
                    # HA's advice: a random delay, so a fleet does not answer the birth all at once.
                    if stop.wait(random.uniform(0, self.birth_jitter)):
                        return
                    jobs.add("announce")
                if "remove" in jobs:
                    self.remove()
                if "announce" in jobs:
                    self.announce()
                elif "labels" in jobs:
                    self._publish_face_event(force=False)
            except Exception:  # a bug here must not end discovery for good
                log.exception("Home Assistant discovery job %s failed", sorted(jobs))

    # -- discovery ----------------------------------------------------------------------------
    def _send(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self.publish(topic, payload, 1, retain)

    def announce(self) -> None:
        """Every discovery config, then the retained JSON mirrors (HA subscribes on discovery)."""
        labels = self.face_labels()
        configs = discovery(self.info, self.topics, labels, camera=self.camera)
        for d in configs:
            self._send(d.topic, d.payload())
        if not self.camera:  # opted out (again): no stale camera entity
            self._send(self.topics.config("camera", f"{self.info.dev}_annotated"), b"")
        self._event_types = face_event_types(labels)
        thresholds, pipelines = self.controls()
        self.mirror.controls(thresholds, pipelines, time.time())
        self._emit(self.mirror.snapshot())
        self.counts["announced"] += 1
        log.info("Home Assistant discovery: %d entities under %s/", len(configs), self.topics.discovery_prefix)

    def _publish_face_event(self, *, force: bool) -> None:
        labels = self.face_labels()
        types = face_event_types(labels)
        if not force and types == self._event_types:
            return
        d = face_event_discovery(self.info, self.topics, labels)
        self._send(d.topic, d.payload())
        self._event_types = types
        log.info("Home Assistant face event types now %s", types)

    def remove(self) -> None:
        """Empty retained payloads for every config topic and retained mirror of this camera."""
        for topic in removal_topics(self.info.dev, self.topics):
            self._send(topic, b"")
        for path in RETAINED_MIRRORS:
            self._send(self.topics.mirror(path), b"")
        self.mirror.forget()
        self.counts["removed"] += 1

    # -- mirrors (vision worker / state loop / command thread) -----------------------------------
    def _emit(self, pubs: list[Publication]) -> None:
        for p in pubs:
            payload = codec.encode(p.doc, "json")  # non-finite numbers become null
            self.publish(self.topics.mirror(p.path), payload, 1, p.retain)

    def on_result(
        self, kind: str, msg: dict[str, Any], events: list[Event], present: dict[str, dict[str, Any]]
    ) -> None:
        if self.enabled:
            self._emit(self.mirror.events(events) + self.mirror.result(kind, msg, present))

    def on_events(self, events: list[Event]) -> None:
        if self.enabled and events:
            self._emit(self.mirror.events(events))

    def on_tick(self, now: float, present: dict[str, dict[str, Any]], *, track_active: bool, segment_on: bool) -> None:
        if self.enabled:
            self._emit(self.mirror.tick(now, present, track_active=track_active, segment_on=segment_on))

    def on_controls(self) -> None:
        if self.enabled:
            thresholds, pipelines = self.controls()
            self._emit(self.mirror.controls(thresholds, pipelines, time.time()))
