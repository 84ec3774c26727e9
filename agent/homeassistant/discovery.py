"""Home Assistant MQTT discovery payloads: pure functions of device info, topics and labels.

One device per camera; every entity's ``unique_id`` (and ``object_id``, hence its entity id) is
``{dev}_{key}``; config topics are ``{prefix}/{component}/{dev}_{key}/config`` (HA's advice:
object id = unique id, no node id). Every entity reads JSON (``value_json`` templates) from the
agent's mirrors on ``maix/{dev}/ha/...`` or its JSON ``state``, never msgpack. Controls write a
plain value on ``maix/{dev}/ha/set/...``; :func:`command_for` turns that into the protocol command
the agent runs through its usual validation (``thresholds/set``, ``pipelines/set``, …).

Full key names are used (no abbreviations), so a payload reads like HA's documentation.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.pipelines import registry
from agent.vision.faces import UNKNOWN

ORIGIN_NAME = "maix-agent"


@dataclass(frozen=True)
class DeviceInfo:
    dev: str
    name: str
    sw_version: str
    model: str = "maix-agent camera"
    manufacturer: str = "maix-agent"


@dataclass(frozen=True)
class HaTopics:
    """Topic names of the Home Assistant side of one device."""

    discovery_prefix: str
    base: str  # maix/{dev}

    @property
    def birth(self) -> str:
        return f"{self.discovery_prefix}/status"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def snapshot(self) -> str:
        return f"{self.base}/snapshot"

    @property
    def camera(self) -> str:
        """The annotated camera's JPEG frames (homeassistant.camera)."""
        return f"{self.base}/ha/camera"

    def mirror(self, path: str) -> str:
        return f"{self.base}/ha/{path}"

    def set(self, path: str) -> str:
        return f"{self.base}/ha/set/{path}"

    @property
    def set_filter(self) -> str:
        return f"{self.base}/ha/set/#"

    def set_path(self, topic: str) -> str | None:
        head = f"{self.base}/ha/set/"
        return topic[len(head) :] if topic.startswith(head) else None

    def config(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{object_id}/config"


def _family_command(command: str) -> tuple[str, str]:
    family, _, name = command.partition("/")
    return family, name


# Mirror paths (under maix/{dev}/ha/); mirror.py publishes them.
PERSON, CLASS, PRESENCE, TRACK = "person", "class", "presence", "track"
THRESHOLDS, PIPELINES = "thresholds", "pipelines"
EVENT_FACE, EVENT_TRACK = "event/face", "event/track"
RETAINED_MIRRORS = (PERSON, CLASS, PRESENCE, TRACK, THRESHOLDS, PIPELINES)

# From the pipeline registry: number key → (path in thresholds, name, max); switch names;
# button key → (family, command, request, name, icon).
THRESHOLD_NUMBERS: dict[str, tuple[tuple[str, str], str, float]] = {
    f"{p.section}_{n.field}": ((p.section, n.field), n.name, n.top) for p in registry.PIPELINES for n in p.numbers
}
PIPELINE_NAMES = tuple(p.name for p in registry.PIPELINES)
BUTTONS: dict[str, tuple[str, str, dict[str, Any], str, str]] = {
    **{b.key: (*_family_command(b.command), {}, b.name, b.icon) for p in registry.PIPELINES for b in p.buttons},
    "take_snapshot": ("snapshot", "", {"draw": True}, "Take snapshot", "mdi:camera"),
}
TRACK_EVENT_TYPES = ["lost", "found"]


def slug(label: str) -> str:
    """An id-safe form of a label: ``[a-z0-9_]``, accents folded; never empty."""
    ascii_ = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^a-z0-9]+", "_", ascii_.lower()).strip("_")
    return s or "label_" + hashlib.sha1(label.encode("utf-8")).hexdigest()[:8]


def face_event_types(labels: Iterable[str]) -> list[str]:
    """Event types of the ``face`` event entity: every enrolled label slugged, then ``unknown``."""
    out: dict[str, None] = {}
    for label in labels:
        if label != UNKNOWN:
            out.setdefault(slug(label), None)
    out.setdefault(UNKNOWN, None)
    return list(out)


@dataclass(frozen=True)
class Discovery:
    component: str  # sensor, binary_sensor, number, switch, button, image, event
    key: str
    topic: str
    config: dict[str, Any]

    def payload(self) -> bytes:
        return json.dumps(self.config, separators=(",", ":"), sort_keys=True).encode()


def _base(info: DeviceInfo, topics: HaTopics, key: str) -> dict[str, Any]:
    uid = f"{info.dev}_{key}"
    return {
        "unique_id": uid,
        "object_id": uid,
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"maix_agent_{info.dev}"],
            "name": info.name,
            "model": info.model,
            "manufacturer": info.manufacturer,
            "sw_version": info.sw_version,
        },
        "origin": {"name": ORIGIN_NAME, "sw_version": info.sw_version},
        "qos": 1,
    }


def _sensors(info: DeviceInfo, t: HaTopics) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            "sensor",
            "person",
            {
                "name": "Last recognised person",
                "icon": "mdi:account-check",
                "state_topic": t.mirror(PERSON),
                "value_template": "{{ value_json.label }}",
                "json_attributes_topic": t.mirror(PERSON),
            },
        ),
        (
            "sensor",
            "class",
            {
                "name": "Current class",
                "icon": "mdi:shape",
                "state_topic": t.mirror(CLASS),
                "value_template": "{{ value_json.label }}",
                "json_attributes_topic": t.mirror(CLASS),
            },
        ),
        (
            "sensor",
            "people",
            {
                "name": "People count",
                "icon": "mdi:account-group",
                "state_topic": t.mirror(PRESENCE),
                "value_template": "{{ value_json.people }}",
                "state_class": "measurement",
            },
        ),
        (
            "sensor",
            "tracker",
            {
                "name": "Tracker state",
                "icon": "mdi:target",
                "state_topic": t.mirror(TRACK),
                "value_template": "{{ value_json.state }}",
                "json_attributes_topic": t.mirror(TRACK),
            },
        ),
        (
            "sensor",
            "fps",
            {
                "name": "Frame rate",
                "icon": "mdi:speedometer",
                "state_topic": t.state,
                "value_template": "{{ value_json.fps }}",
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            },
        ),
        (
            "binary_sensor",
            "person_present",
            {
                "name": "Person present",
                "device_class": "occupancy",
                "state_topic": t.mirror(PRESENCE),
                "value_template": "{{ value_json.person }}",
                "payload_on": "ON",
                "payload_off": "OFF",
            },
        ),
        (
            "binary_sensor",
            "known_face_present",
            {
                "name": "Known face present",
                "device_class": "occupancy",
                "state_topic": t.mirror(PRESENCE),
                "value_template": "{{ value_json.known_face }}",
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": t.mirror(PRESENCE),
            },
        ),
    ]


def _controls(t: HaTopics) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    for key, ((section, field), name, top) in THRESHOLD_NUMBERS.items():
        out.append(
            (
                "number",
                key,
                {
                    "name": name,
                    "icon": "mdi:tune",
                    "entity_category": "config",
                    "command_topic": t.set(f"threshold/{key}"),
                    "state_topic": t.mirror(THRESHOLDS),
                    "value_template": f"{{{{ value_json.{section}.{field} }}}}",
                    "min": 0.0,
                    "max": top,
                    "step": 0.01,
                    "mode": "slider",
                },
            )
        )
    for pipe in PIPELINE_NAMES:
        out.append(
            (
                "switch",
                f"pipeline_{pipe}",
                {
                    "name": f"{pipe.capitalize()} pipeline",
                    "icon": "mdi:eye",
                    "entity_category": "config",
                    "command_topic": t.set(f"pipeline/{pipe}"),
                    "state_topic": t.mirror(PIPELINES),
                    "value_template": f"{{{{ 'ON' if value_json.{pipe} else 'OFF' }}}}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                },
            )
        )
    for key, (_f, _c, _r, name, icon) in BUTTONS.items():
        out.append(("button", key, {"name": name, "icon": icon, "command_topic": t.set(f"button/{key}")}))
    out.append(("image", "snapshot", {"name": "Snapshot", "image_topic": t.snapshot, "content_type": "image/jpeg"}))
    return out


def _events(t: HaTopics, labels: Iterable[str]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            "event",
            "face",
            {
                "name": "Face",
                "icon": "mdi:face-recognition",
                "state_topic": t.mirror(EVENT_FACE),
                "event_types": face_event_types(labels),
            },
        ),
        (
            "event",
            "track",
            {
                "name": "Track",
                "icon": "mdi:target-account",
                "state_topic": t.mirror(EVENT_TRACK),
                "event_types": list(TRACK_EVENT_TYPES),
            },
        ),
    ]


def _camera(t: HaTopics) -> tuple[str, str, dict[str, Any]]:
    return ("camera", "annotated", {"name": "Annotated view", "icon": "mdi:cctv", "topic": t.camera})


def discovery(
    info: DeviceInfo, topics: HaTopics, face_labels: Iterable[str] = (), *, camera: bool = False
) -> list[Discovery]:
    """Every discovery config of one camera (the annotated camera entity only when opted in)."""
    specs = [*_sensors(info, topics), *_events(topics, face_labels), *_controls(topics)]
    if camera:
        specs.append(_camera(topics))
    return [
        Discovery(component, key, topics.config(component, f"{info.dev}_{key}"), {**_base(info, topics, key), **cfg})
        for component, key, cfg in specs
    ]


def face_event_discovery(info: DeviceInfo, topics: HaTopics, face_labels: Iterable[str]) -> Discovery:
    """Only the ``face`` event entity (re-published when the enrolled labels change)."""
    return next(d for d in discovery(info, topics, face_labels) if d.component == "event" and d.key == "face")


def removal_topics(dev: str, topics: HaTopics) -> list[str]:
    """Config topics of the whole entity set (publish empty retained payloads to remove them)."""
    info = DeviceInfo(dev, dev, "")
    return [d.topic for d in discovery(info, topics, camera=True)]


# -- commands from Home Assistant -------------------------------------------------------------
def _number(payload: bytes) -> float | str:
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        return float(text)
    except ValueError:
        return text  # the command's validation rejects it with a clear message


def _switch(payload: bytes) -> bool | str:
    text = payload.decode("utf-8", errors="replace").strip()
    return {"ON": True, "OFF": False}.get(text.upper(), text)


def command_for(path: str, payload: bytes) -> tuple[str, str, dict[str, Any]] | None:
    """The protocol command ``(family, command, request)`` for a write on ``ha/set/{path}``."""
    kind, _, key = path.partition("/")
    if kind == "threshold" and key in THRESHOLD_NUMBERS:
        (section, field), _name, _top = THRESHOLD_NUMBERS[key]
        return "thresholds", "set", {section: {field: _number(payload)}}
    if kind == "pipeline" and key in PIPELINE_NAMES:
        return "pipelines", "set", {key: _switch(payload)}
    if kind == "button" and key in BUTTONS:
        family, command, request, _name, _icon = BUTTONS[key]
        return family, command, dict(request)
    return None
