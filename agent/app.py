"""Composition root: settings → broker link → router → pipelines → banks → fleet sync.

The only module that wires layers together. Built once from :class:`Settings`; ``start`` brings
everything up, ``stop`` takes it down cleanly (``offline`` published, embedded broker stopped).
"""

from __future__ import annotations

import logging
import platform
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from agent import __version__
from agent.bank.clock import HLC
from agent.bank.sync import FleetSync
from agent.commands.context import Context
from agent.commands.dispatch import CommandRouter
from agent.controls import Controls
from agent.errors import TransportError
from agent.events import Event, EventDetector
from agent.homeassistant import DeviceInfo, HaTopics, HomeAssistantBridge
from agent.mqtt import codec
from agent.mqtt.client import MqttLink
from agent.mqtt.embedded import EmbeddedBroker
from agent.mqtt.topics import Message, Route, TopicRegistry, Topics
from agent.pipelines.classifier import ClassifierService
from agent.pipelines.face_library import FaceLibrary
from agent.pipelines.reembed import Reembed
from agent.pipelines.registry import all_commands
from agent.pipelines.track import TrackService
from agent.preview import Preview
from agent.services import Services
from agent.settings import Settings
from agent.snapshots import Snapshots
from agent.sources import FrameSlot, make_source
from agent.sources.base import Source
from agent.version import PROTOCOL
from agent.worker import VisionWorker

log = logging.getLogger(__name__)
PACKET_OVERHEAD = 64 << 10  # topic + properties on top of the largest payload the limits allow


def _set_fastpath(choice: str) -> str:
    import fastpath

    fastpath.set_implementation(choice)
    return fastpath.implementation()


class Agent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.time()
        self.stop_event = threading.Event()
        self.device_id = settings.device.id
        self.fastpath = _set_fastpath(settings.fastpath)
        settings.storage.dir.mkdir(parents=True, exist_ok=True)
        self.controls = Controls(settings, settings.storage.dir)
        self.broker: EmbeddedBroker | None = None
        self.mqtt_cfg = settings.mqtt
        self.topics = Topics(settings.mqtt.prefix, self.device_id, settings.device.fleet)
        self.registry = TopicRegistry()
        self.slot = FrameSlot()
        self.source: Source | None = make_source(settings.source, self.slot)
        self.frames_rejected = 0
        self.clock = HLC(self.device_id)
        self.services = Services(settings, self.controls, self.clock, self.device_id)
        self.engine = self.services.engine
        self.loader = self.services.loader
        self.track = self.services.get(TrackService)
        self.face_library = self.services.get(FaceLibrary)
        self.reembed = self.services.get(Reembed)
        self.context = Context(
            settings,
            self.device_id,
            self.controls,
            self.info,
            frames=self.slot,
            engine=self.engine,
            snapshot=Snapshots(lambda: self.engine.last, lambda jpeg: self._publish(self.topics.snapshot, jpeg)),
            services=self.services.by_type,
        )
        self._connected = threading.Event()  # set on paho's thread; the state thread does the work
        fleet = settings.fleet
        self.fleet_sync = FleetSync(
            self.topics,
            list(self.services.banks.values()),
            self._publish,
            key=fleet.key.get_secret_value().encode() if fleet.key else None,
            max_bytes=settings.limits.bank_entry_bytes,
            queue_bytes=fleet.queue_bytes,
            quiet=fleet.quiet,
            max_wait=fleet.max_wait,
            qos=fleet.subscribe_qos,
        )
        self.link: MqttLink | None = None
        self.router = CommandRouter(
            all_commands(),
            self.context,
            self.topics,
            self._publish,
            max_bytes=settings.limits.command_bytes,
            queue_size=settings.limits.command_queue,
            qos=settings.mqtt.qos,
            expensive_rate=settings.limits.expensive_rate,
            expensive_burst=settings.limits.expensive_burst,
        )
        self.events = EventDetector(
            self.device_id,
            debounce=settings.events.debounce,
            class_frames=settings.events.class_frames,
            hold_last=settings.results.publish == "change",
        )
        self.ha = self._build_homeassistant()
        self.worker = VisionWorker(
            self.slot,
            self.engine,
            self._publish_result,
            observe=self._observe_result,
            device_id=self.device_id,
            max_pixels=settings.limits.image_pixels,
            mode=settings.performance.mode,
            parallel=settings.lane_threads(),
        )
        ha = settings.homeassistant
        self.preview = Preview(
            settings.preview,
            self._publish,
            dev=self.device_id,
            topic=self.topics.preview,
            ha_topic=HaTopics(ha.prefix, self.topics.base).camera if ha.enabled and ha.camera else None,
            ha_interval=ha.camera_interval,
            last_results=lambda: self.engine.last,
        )
        self.worker.on_published = self.preview.offer
        self.services.by_type[Preview] = self.preview  # the context finds it by class too
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self.shutdown = threading.Event()  # set by signals; run_forever then stops cleanly
        self.on_stop: list[Callable[[], None]] = []

    # -- publishing ---------------------------------------------------------------------
    def _publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False, **kw: Any) -> None:
        if self.link is not None:
            self.link.publish(topic, payload, qos, retain, **kw)

    def _publish_result(self, kind: str, payload: bytes) -> None:
        self._publish(self.topics.result(kind), payload, 0, False)

    def _observe_result(self, kind: str, msg: dict[str, Any]) -> None:
        events = self.events.feed(kind, msg)
        self._emit_events(events)
        self.ha.on_result(kind, msg, events, self.events.present())

    def _emit_events(self, events: list[Event]) -> None:
        for ev in events:
            self._publish(self.topics.event(ev.kind), codec.encode(ev.body, "msgpack"), self.settings.mqtt.qos, False)

    # -- Home Assistant ---------------------------------------------------------------------
    def _build_homeassistant(self) -> HomeAssistantBridge:
        s = self.settings
        ha = HomeAssistantBridge(
            enabled=s.homeassistant.enabled,
            info=DeviceInfo(self.device_id, s.device.name or self.device_id, __version__),
            topics=HaTopics(s.homeassistant.prefix, self.topics.base),
            publish=self._publish,
            submit=lambda family, command, payload: self.router.call(family, command, payload, "homeassistant"),
            face_labels=self.services.banks["faces"].labels,
            controls=lambda: (self.controls.thresholds.model_dump(), self.controls.pipelines.model_dump()),
            debounce=s.events.debounce,
            refresh=s.homeassistant.refresh,
            camera=s.homeassistant.camera,
        )
        self.services.banks["faces"].on_change.append(ha.labels_changed)
        self.reembed.on_progress.append(self.publish_state)
        self.controls.listeners.append(ha.on_controls)
        return ha

    def _tick(self) -> None:
        """Periodic (state loop): identities that left while no frame came, HA mirrors' refresh."""
        if not self.controls.enabled("faces"):
            self.events.release_held()
        self.face_library.ring.purge()  # retention also holds while no frame comes
        now = time.time()
        events = self.events.tick(now)
        self._emit_events(events)
        self.ha.on_events(events)
        self.ha.on_tick(
            now, self.events.present(), track_active=self.track.active, segment_on=self.controls.enabled("segment")
        )

    # -- inbound frames -------------------------------------------------------------------
    def _frame_in(self, msg: Message) -> None:
        """Route sink for ``frame/in``: bytes into the slot; decoding happens on the worker."""
        if len(msg.payload) > self.settings.limits.frame_bytes:
            self.frames_rejected += 1
            log.warning("frame/in payload of %d bytes exceeds limits.frame_bytes", len(msg.payload))
            return
        meta = {k: v for k, v in msg.user_properties if k == "seq"}
        self.slot.put(None, data=msg.payload, meta=meta)

    # -- state ------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        s = self.settings
        return {
            "version": __version__,
            "protocol": PROTOCOL,
            "dev": self.device_id,
            "fleet": s.device.fleet,
            "python": platform.python_version(),
            "fastpath": self.fastpath,
            "source": s.source.uri,
            "models": {
                "features": s.models.features,
                "face_detector": s.models.face_detector,
                "face_embedder": s.models.face_embedder,
                "segmenter": s.models.segmenter,
                "tracker": s.models.tracker,
            },
            "engines": self.loader.report(),
            "commands": sorted(f"{c.family}/{c.name}" if c.name else c.family for c in self.router.commands.values()),
            "uptime": round(time.time() - self.started_at, 1),
        }

    def state(self) -> dict[str, Any]:
        warnings = []
        if self.settings.fleet.key is None:
            warnings.append("fleet.key is not set: bank entries from the fleet are not authenticated")
        src = self.source.status.as_dict() if self.source else {"uri": self.settings.source.uri, "state": "external"}
        return {
            "version": __version__,
            "protocol": PROTOCOL,
            "dev": self.device_id,
            "fleet": self.settings.device.fleet,
            "pipelines": self.controls.pipelines.model_dump(),
            "thresholds": self.controls.thresholds.model_dump(),
            "models": self.info()["models"],
            "engines": self.loader.report(),
            "fastpath": self.fastpath,
            "fps": round(self.worker.fps, 2),
            "frame_ms": round(self.worker.last_ms, 2),
            "frames_in": self.slot.frames_in,
            "frames_dropped": self.slot.frames_dropped + self.worker.dropped,
            "frames_processed": self.worker.processed,
            "frames_rejected": self.frames_rejected + self.worker.bad_frames,
            "source": src,
            "commands": dict(self.router.counts),
            "events": dict(self.events.counts),
            "banks": {
                **{name: bank.count() for name, bank in sorted(self.services.banks.items(), reverse=True)},
                "samples": len(self.services.get(ClassifierService).samples),
            },
            "review": self.face_library.state(),
            "reembed": self.reembed.state(),
            **self.fleet_sync.state(),
            "pipeline_ms": dict(self.engine.timings_ms),
            "stages_ms": self.worker.times.medians_ms(),
            "pipeline_errors": self.engine.errors,
            "track": {"active": self.track.active, **(self.track.last or {})},
            "preview": self.preview.state(),
            "models_loaded": self.loader.loaded(),
            "uptime": round(time.time() - self.started_at, 1),
            "warnings": warnings,
        }

    def _on_connected(self) -> None:
        """paho's thread: only hand work over (the state thread publishes the state)."""
        self.fleet_sync.connected()
        self.ha.on_connected()
        self._connected.set()

    def publish_state(self) -> None:
        self._publish(self.topics.state, codec.encode(self.state(), "json"), 1, True)

    def _state_loop(self) -> None:
        """The retained state every ``results.state_interval`` seconds and at once on (re)connection."""
        interval = self.settings.results.state_interval
        next_at = time.monotonic() + interval
        while not self.stop_event.is_set():
            connected = self._connected.wait(max(0.0, next_at - time.monotonic()))
            if self.stop_event.is_set():
                return
            try:
                if connected:
                    self._connected.clear()
                    self.publish_state()
                    continue
                next_at = time.monotonic() + interval
                self.publish_state()
                self._tick()
            except Exception:
                log.exception("state publish failed")

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, connect_timeout: float | None = None) -> None:
        s = self.settings
        if s.mqtt.host == "embedded":
            self.broker = EmbeddedBroker(port=s.mqtt.port if s.mqtt.port != 1883 else 0).start()
            self.mqtt_cfg = s.mqtt.model_copy(update={"host": "127.0.0.1", "port": self.broker.port})
        qos = s.mqtt.qos
        self.registry.add(Route(self.topics.commands, qos, self.router.submit, "commands"))
        self.registry.add(Route(self.topics.fleet_commands, qos, self.router.submit, "fleet-commands"))
        self.fleet_sync.attach(self.registry)
        if s.source.uri == "mqtt":
            self.registry.add(Route(self.topics.frame_in, 0, self._frame_in, "frame-in"))
        for route in self.ha.routes():
            self.registry.add(route)
        client_id = s.mqtt.client_id or f"maix-agent-{self.device_id}"
        lim = s.limits
        self.link = MqttLink(
            self.mqtt_cfg,
            client_id,
            self.registry,
            self.topics.availability,
            on_connected=self._on_connected,
            max_packet=max(lim.command_bytes, lim.frame_bytes, lim.bank_entry_bytes) + PACKET_OVERHEAD,
        )
        self._threads.append(self.router.start(self.stop_event))
        self.worker.start(self.stop_event)
        self._threads.append(self.ha.start(self.stop_event))
        self._threads.append(self.fleet_sync.start(self.stop_event))
        self._threads.append(self.preview.run(self.stop_event))
        if self.source is not None:
            self.source.start()
        t = threading.Thread(target=self._state_loop, name="state", daemon=True)
        t.start()
        self._threads.append(t)
        self.link.start()
        if connect_timeout is not None and not self.link.wait_connected(connect_timeout):
            raise TransportError(f"no connection to {self.mqtt_cfg.host}:{self.mqtt_cfg.port} in {connect_timeout}s")
        log.info("agent %s started (source %s, fastpath %s)", self.device_id, s.source.uri, self.fastpath)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.stop_event.set()
        for hook in self.on_stop:
            try:
                hook()
            except Exception:
                log.exception("stop hook failed")
        if self.source is not None:
            self.source.stop()
        if self.link is not None:
            self.link.stop()
        for t in self._threads:
            t.join(2)
        if self.broker is not None:
            self.broker.cleanup()
        log.info("agent %s stopped", self.device_id)

    def run_forever(self) -> int:
        """Run until SIGINT/SIGTERM (exit 0) or a fatal broker error such as bad credentials (2)."""

        def _sig(_signo: int, _frame: object) -> None:
            self.shutdown.set()

        signal.signal(signal.SIGINT, _sig)
        signal.signal(signal.SIGTERM, _sig)
        try:
            self.start()
            assert self.link is not None
            while not self.shutdown.is_set():
                if self.link.fatal_event.wait(0.5):
                    log.error("stopping: %s", self.link.fatal)
                    return 2
            return 0
        except TransportError as exc:
            log.error("%s", exc)
            return 2
        finally:
            self.stop()
