"""Every Home Assistant discovery payload against HA's documented MQTT schema (2024.3).

The key tables below are the configuration variables of home-assistant.io's
``source/_integrations/{platform}.mqtt.markdown`` (identical to the discovery schemas of
homeassistant 2024.3.3, ``homeassistant/components/mqtt/{platform}.py``), the device and origin
maps, and the abbreviations HA expands (``abbreviations.py``) for those keys.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agent.homeassistant.discovery import (
    BUTTONS,
    PIPELINE_NAMES,
    THRESHOLD_NUMBERS,
    DeviceInfo,
    Discovery,
    HaTopics,
    command_for,
    discovery,
    face_event_discovery,
    face_event_types,
    removal_topics,
    slug,
)

COMMON = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "device",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "object_id",
    "origin",
    "payload_available",
    "payload_not_available",
    "qos",
    "unique_id",
}
DOCUMENTED: dict[str, set[str]] = {
    "sensor": COMMON
    | {
        "device_class",
        "expire_after",
        "force_update",
        "last_reset_value_template",
        "state_class",
        "state_topic",
        "suggested_display_precision",
        "unit_of_measurement",
        "value_template",
    },
    "binary_sensor": COMMON
    | {"device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on", "state_topic"}
    | {"value_template"},
    "number": COMMON
    | {"command_template", "command_topic", "device_class", "max", "min", "mode", "optimistic", "payload_reset"}
    | {"retain", "state_topic", "step", "unit_of_measurement", "value_template"},
    "switch": COMMON
    | {"command_topic", "device_class", "optimistic", "payload_off", "payload_on", "retain", "state_off", "state_on"}
    | {"state_topic", "value_template"},
    "button": COMMON | {"command_template", "command_topic", "device_class", "payload_press", "retain"},
    "image": COMMON | {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
    "event": COMMON | {"device_class", "event_types", "state_topic", "value_template"},
}
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "number": {"command_topic"},
    "switch": {"command_topic"},
    "button": {"command_topic"},
    "image": set(),  # exactly one of image_topic / url_topic
    "event": {"state_topic", "event_types"},
}
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
DEVICE_ABBREVIATIONS = {
    "cns": "connections",
    "cu": "configuration_url",
    "ids": "identifiers",
    "mf": "manufacturer",
    "mdl": "model",
    "hw": "hw_version",
    "sw": "sw_version",
    "sa": "suggested_area",
    "sn": "serial_number",
}
ABBREVIATIONS = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "cont_type": "content_type",
    "dev": "device",
    "dev_cla": "device_class",
    "e": "encoding",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "evt_typ": "event_types",
    "exp_aft": "expire_after",
    "frc_upd": "force_update",
    "ic": "icon",
    "img_e": "image_encoding",
    "img_t": "image_topic",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "lrst_val_tpl": "last_reset_value_template",
    "o": "origin",
    "obj_id": "object_id",
    "off_dly": "off_delay",
    "opt": "optimistic",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "pl_prs": "payload_press",
    "pl_rst": "payload_reset",
    "ret": "retain",
    "stat_cla": "state_class",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_t": "state_topic",
    "sug_dsp_prc": "suggested_display_precision",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "url_t": "url_topic",
    "url_tpl": "url_template",
    "val_tpl": "value_template",
}
SENSOR_DEVICE_CLASSES = {None, "occupancy", "presence", "motion"}  # the ones a camera could use
ENTITY_CATEGORIES = {"config", "diagnostic"}
ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")

INFO = DeviceInfo("cam1", "Porch camera", "1.2.3")
TOPICS = HaTopics("homeassistant", "maix/cam1")
LABELS = ["Alice", "bob", "José María", "张三", "alice"]


def configs() -> list[Discovery]:
    return discovery(INFO, TOPICS, LABELS)


def expand(cfg: dict[str, Any]) -> dict[str, Any]:
    return {ABBREVIATIONS.get(k, k): v for k, v in cfg.items()}


@pytest.fixture(params=[(d.component, d.key) for d in configs()], ids=lambda p: f"{p[0]}.{p[1]}")
def entity(request: pytest.FixtureRequest) -> Discovery:
    return next(d for d in configs() if (d.component, d.key) == request.param)


def test_the_entity_set_is_complete() -> None:
    got = {(d.component, d.key) for d in configs()}
    want = {
        ("sensor", "person"),
        ("sensor", "class"),
        ("sensor", "people"),
        ("sensor", "tracker"),
        ("sensor", "fps"),
        ("binary_sensor", "person_present"),
        ("binary_sensor", "known_face_present"),
        ("event", "face"),
        ("event", "track"),
        ("image", "snapshot"),
        *(("number", k) for k in ("face_match", "face_detect", "segment_score", "track_score")),
        *(("switch", f"pipeline_{p}") for p in ("classifier", "faces", "segment", "track")),
        ("button", "learn"),
        ("button", "take_snapshot"),
    }
    assert got == want


def test_payload_keys_are_documented_and_required_present(entity: Discovery) -> None:
    cfg = json.loads(entity.payload())  # what goes on the wire
    for key in cfg:
        assert key in DOCUMENTED[entity.component] or key in ABBREVIATIONS, f"{key} not documented"
    full = expand(cfg)
    assert set(full) <= DOCUMENTED[entity.component]
    assert REQUIRED[entity.component] <= set(full)
    if entity.component == "image":
        assert ("image_topic" in full) != ("url_topic" in full)
    assert not ("availability" in full and "availability_topic" in full)  # exclusive in HA's schema


def test_topic_ids_device_origin_availability(entity: Discovery) -> None:
    cfg = expand(json.loads(entity.payload()))
    uid = f"cam1_{entity.key}"
    assert entity.topic == f"homeassistant/{entity.component}/{uid}/config"
    assert cfg["unique_id"] == uid and cfg["object_id"] == uid
    assert ID_RE.match(uid)
    assert cfg["availability_topic"] == "maix/cam1/availability"
    assert (cfg["payload_available"], cfg["payload_not_available"]) == ("online", "offline")
    device = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in cfg["device"].items()}
    origin = {"sw": "sw_version", "url": "support_url"}
    cfg["origin"] = {origin.get(k, k): v for k, v in cfg["origin"].items()}
    assert set(device) <= DEVICE_KEYS
    assert device["identifiers"] == ["maix_agent_cam1"]
    assert (device["name"], device["sw_version"]) == ("Porch camera", "1.2.3")
    assert device["model"] and device["manufacturer"]
    assert set(cfg["origin"]) <= ORIGIN_KEYS and cfg["origin"]["name"] == "maix-agent"
    assert cfg["origin"]["sw_version"] == "1.2.3"
    assert cfg["name"] and isinstance(cfg["name"], str)
    assert cfg["qos"] in (0, 1, 2)
    if "entity_category" in cfg:
        assert cfg["entity_category"] in ENTITY_CATEGORIES
    if entity.component == "binary_sensor":
        assert cfg.get("device_class") in SENSOR_DEVICE_CLASSES


def test_everything_reads_json_from_agent_topics(entity: Discovery) -> None:
    cfg = expand(json.loads(entity.payload()))
    for key in ("state_topic", "json_attributes_topic", "image_topic"):
        if key in cfg:
            assert cfg[key].startswith("maix/cam1/")
            assert "/result/" not in cfg[key] and "/event/" not in cfg[key].replace("/ha/event/", "")
    if "value_template" in cfg:
        assert "value_json" in cfg["value_template"]
    if "command_topic" in cfg:
        assert cfg["command_topic"].startswith("maix/cam1/ha/set/")


def test_numbers_and_switches_follow_the_controls() -> None:
    by_key = {d.key: expand(d.config) for d in configs()}
    for key, ((section, field), _name, top) in THRESHOLD_NUMBERS.items():
        cfg = by_key[key]
        assert cfg["state_topic"] == "maix/cam1/ha/thresholds"
        assert cfg["value_template"] == f"{{{{ value_json.{section}.{field} }}}}"
        assert 0 <= cfg["min"] < cfg["max"] == top and 0 < cfg["step"] <= 0.01
        assert cfg["mode"] in ("auto", "box", "slider")
    for pipe in PIPELINE_NAMES:
        cfg = by_key[f"pipeline_{pipe}"]
        assert cfg["state_topic"] == "maix/cam1/ha/pipelines"
        assert (cfg["payload_on"], cfg["payload_off"]) == ("ON", "OFF")
        assert pipe in cfg["value_template"]


def test_face_event_types_are_slugged_labels_plus_unknown() -> None:
    cfg = face_event_discovery(INFO, TOPICS, LABELS).config
    types = cfg["event_types"]
    assert types[-1] == "unknown"
    assert types[:3] == ["alice", "bob", "jose_maria"]
    assert types[3].startswith("label_")  # no ASCII left: a stable hash
    assert len(types) == len(set(types)) == 5  # "Alice" and "alice" are one event type
    assert all(ID_RE.match(t) for t in types)
    assert face_event_types([]) == ["unknown"]
    assert face_event_types(["unknown", "x"]) == ["x", "unknown"]
    # removing a label removes its event type
    assert "bob" not in face_event_discovery(INFO, TOPICS, ["Alice"]).config["event_types"]


@pytest.mark.parametrize(
    ("label", "want"),
    [("Alice", "alice"), ("Mary Jane", "mary_jane"), ("  o'Neil!! ", "o_neil"), ("Zoë", "zoe"), ("id_3", "id_3")],
)
def test_slug(label: str, want: str) -> None:
    assert slug(label) == want


def test_slug_is_stable_for_non_ascii() -> None:
    assert slug("张三") == slug("张三") != slug("李四")


def test_track_event_types() -> None:
    cfg = next(d for d in configs() if d.key == "track" and d.component == "event").config
    assert cfg["event_types"] == ["lost", "found"]


def test_removal_covers_every_config_topic() -> None:
    everything = discovery(INFO, TOPICS, LABELS, camera=True)
    assert sorted(removal_topics("cam1", TOPICS)) == sorted(d.topic for d in everything)
    camera = [d for d in everything if d.component == "camera"]  # opt-in only
    assert len(camera) == 1 and camera[0].topic not in {d.topic for d in configs()}
    assert camera[0].config["topic"] == TOPICS.camera


def test_payloads_are_json_and_stable() -> None:
    a = [d.payload() for d in configs()]
    b = [d.payload() for d in discovery(INFO, TOPICS, list(LABELS))]
    assert a == b  # re-announcing publishes identical bytes (HA sees no change)
    for p in a:
        assert isinstance(json.loads(p), dict)


@pytest.mark.parametrize(
    ("path", "payload", "want"),
    [
        ("threshold/face_match", b"0.75", ("thresholds", "set", {"face": {"match": 0.75}})),
        ("threshold/face_detect", b"0.5", ("thresholds", "set", {"face": {"detect": 0.5}})),
        ("threshold/segment_score", b"1", ("thresholds", "set", {"segment": {"score": 1.0}})),
        ("threshold/track_score", b" 0.9 ", ("thresholds", "set", {"track": {"score": 0.9}})),
        ("threshold/face_match", b"lots", ("thresholds", "set", {"face": {"match": "lots"}})),
        ("pipeline/faces", b"ON", ("pipelines", "set", {"faces": True})),
        ("pipeline/segment", b"OFF", ("pipelines", "set", {"segment": False})),
        ("pipeline/track", b"maybe", ("pipelines", "set", {"track": "maybe"})),
        ("button/learn", b"PRESS", ("classifier", "learn", {})),
        ("button/take_snapshot", b"PRESS", ("snapshot", "", {"draw": True})),
        ("threshold/nope", b"1", None),
        ("pipeline/nope", b"ON", None),
        ("button/nope", b"PRESS", None),
        ("other", b"", None),
    ],
)
def test_command_for(path: str, payload: bytes, want: object) -> None:
    assert command_for(path, payload) == want


def test_every_control_topic_maps_to_a_command() -> None:
    for d in configs():
        topic = d.config.get("command_topic")
        if topic is None:
            continue
        path = TOPICS.set_path(topic)
        assert path is not None
        payload = {"number": b"0.5", "switch": b"ON", "button": b"PRESS"}[d.component]
        assert command_for(path, payload) is not None
    assert set(BUTTONS) == {"learn", "take_snapshot"}


def test_ha_topics() -> None:
    assert TOPICS.birth == "homeassistant/status"
    assert TOPICS.set_filter == "maix/cam1/ha/set/#"
    assert TOPICS.set_path("maix/cam1/ha/set/pipeline/faces") == "pipeline/faces"
    assert TOPICS.set_path("maix/cam2/ha/set/pipeline/faces") is None
