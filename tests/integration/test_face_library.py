"""Corrections, the face library and the review queue over MQTT, on real photos and a real broker.

Jeb Bush (never enrolled) is named as his brother George W. Bush by SFace (LFW deep-funneled,
../shared/eval/faces_open: 0.727-0.730 against George's photos, over the 0.70 default): one
``face/reject`` on camera B turns Jeb, in another photo, ``unknown`` on camera A once the
negative has synced, while George in photos never enrolled is still named.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.app import Agent
from tests.integration.conftest import AgentFactory
from tests.integration.test_fleet import KEY, ask, converged, poll
from tests.support.mqtt import TestClient, decode

LFW = "faces_open/lfw_deepfunneled"
GEORGE = [f"{LFW}/George_W_Bush/George_W_Bush_000{i}.jpg" for i in (2, 1, 3)]
JEB = [f"{LFW}/Jeb_Bush/Jeb_Bush_000{i}.jpg" for i in (3, 1, 4)]
LOOSE = {"face": {"match": 0.65}}  # a permissive camera: the false match holds whatever the default rule


@pytest.fixture
def img(eval_dir: Path) -> Callable[[str], bytes]:
    return lambda rel: (eval_dir / rel).read_bytes()


@pytest.fixture
def c(client: TestClient, prefix: str) -> TestClient:
    client.subscribe(f"{prefix}/+/reply/#", f"{prefix}/+/event/#", f"{prefix}/+/state")
    return client


def names(c: TestClient, prefix: str, dev: str, image: bytes) -> list[str]:
    found = ask(c, prefix, dev, "infer", {"pipeline": "faces", "image": image})["faces"]
    return [f["label"] for f in found]


def test_one_correction_turns_a_stranger_unknown_on_every_camera_and_keeps_the_person(
    make_agent: AgentFactory, c: TestClient, prefix: str, img: Callable[[str], bytes]
) -> None:
    a, b = (make_agent(dev, fleet={"key": KEY}) for dev in ("A", "B"))
    for dev in ("A", "B"):
        ask(c, prefix, dev, "thresholds/set", LOOSE)
    enrolled = ask(c, prefix, "A", "face/enrol", {"label": "george", "image": img(GEORGE[0])})
    sample_id = enrolled["faces"][0]["sample"]
    poll(lambda: converged([a, b]), "george on B")
    for dev in ("A", "B"):
        assert names(c, prefix, dev, img(JEB[0])) == ["george"], "the false match this test corrects"
        assert names(c, prefix, dev, img(JEB[1])) == ["george"]
        assert names(c, prefix, dev, img(GEORGE[1])) == ["george"]

    fix = ask(c, prefix, "B", "face/reject", {"label": "george", "image": img(JEB[0])})
    assert fix["was"] == "george" and fix["negatives"] == 1
    poll(lambda: converged([a, b]) and a.services.banks["faces"].negatives(), "the negative on A")
    assert a.services.banks["faces"].negatives()[0].crop.startswith(b"\xff\xd8\xff")
    for dev in ("A", "B"):
        assert names(c, prefix, dev, img(JEB[1])) == ["unknown"], f"Jeb in another photo on {dev}"
        assert names(c, prefix, dev, img(JEB[2])) == ["unknown"]
        assert names(c, prefix, dev, img(GEORGE[1])) == ["george"], f"George still named on {dev}"
        assert names(c, prefix, dev, img(GEORGE[2])) == ["george"]
    listed = ask(c, prefix, "A", "face/list")["faces"]
    assert [(p["label"], p["class_id"], p["samples"], p["negatives"]) for p in listed] == [("george", 1, 1, 1)]
    assert listed[0]["sample_list"][0]["id"] == sample_id and listed[0]["sample_list"][0]["crop_bytes"] > 0
    assert listed[0]["negative_list"][0]["id"] == fix["negative"] and listed[0]["negative_list"][0]["origin"] == "B"

    # rejecting George's own enrolled photo is refused: it is a sample, forget it instead
    own = c.request(prefix, "A", "face/reject", {"label": "george", "image": base64.b64encode(img(GEORGE[0])).decode()})
    assert not own["ok"] and own["error"]["code"] == "conflict" and sample_id in own["error"]["message"]

    # forgetting the negative alone, by its id, on A: Jeb is named george again everywhere
    ask(c, prefix, "A", "face/forget", {"label": "george", "sample": fix["negative"]})
    poll(lambda: not b.services.banks["faces"].negatives(), "the negative's tombstone on B")
    assert names(c, prefix, "B", img(JEB[1])) == ["george"]
    assert [p["negatives"] for p in ask(c, prefix, "B", "face/list")["faces"]] == [0]


def test_samples_keep_their_crops_across_the_fleet_and_one_can_be_forgotten(
    make_agent: AgentFactory, c: TestClient, prefix: str, img: Callable[[str], bytes]
) -> None:
    a = make_agent("A", fleet={"key": KEY})
    ids = [
        ask(c, prefix, "A", "face/enrol", {"label": "george", "image": img(p)})["faces"][0]["sample"]
        for p in GEORGE[:2]
    ]
    joined = make_agent("B", fleet={"key": KEY})  # a camera that joins later gets the crops too
    poll(lambda: converged([a, joined]), "the bank on the new camera")
    # msgpack: the crop is bin; JSON: base64 text
    crop = ask(c, prefix, "B", "face/sample", {"sample": ids[1]})["crop"]
    jpeg = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR)
    assert jpeg is not None and jpeg.shape == (112, 112, 3)
    as_json = c.request(prefix, "B", "face/sample", {"sample": ids[0]})
    assert as_json["ok"] and base64.b64decode(as_json["data"]["crop"])[:3] == b"\xff\xd8\xff"
    listed = ask(c, prefix, "B", "face/list", {"crops": True})["faces"][0]
    assert [s["id"] for s in listed["sample_list"]] == ids and all(
        s["crop"][:2] == b"\xff\xd8" for s in listed["sample_list"]
    )
    size = max(len(e.encode(KEY.encode())) for e in joined.services.banks["faces"].live())
    assert size <= joined.settings.limits.bank_entry_bytes
    ask(c, prefix, "B", "face/forget", {"label": "george", "sample": ids[0]})
    poll(lambda: [e.id for e in a.services.banks["faces"].live()] == [ids[1]], "one sample forgotten on A")
    gone = c.request(prefix, "A", "face/sample", {"sample": ids[0]})
    assert gone["error"]["code"] == "not_found"
    bad = c.request(prefix, "A", "face/forget", {"label": "george", "sample": "../etc"})
    assert bad["error"]["code"] == "bad_request"


def _state(c: TestClient, prefix: str, dev: str, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    topic = f"{prefix}/{dev}/state"
    state: dict[str, Any] = decode(
        c.wait_for(lambda m: m.topic == topic and pred(json.loads(m.payload)), timeout=60).payload
    )
    return state


def test_review_queue_from_a_live_stream_enrol_after_the_fact_and_dismiss(
    make_agent: AgentFactory, c: TestClient, prefix: str, eval_dir: Path, tmp_path: Path, img: Callable[[str], bytes]
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    still = cv2.imread(str(eval_dir / JEB[1]))
    assert still is not None
    for i in range(4):  # Jeb stays in front of the camera (the folder loops)
        cv2.imwrite(str(frames / f"{i:03d}.jpg"), still)
    make_agent(
        "A",
        source={"uri": f"images:{frames}", "loop": True, "fps": 10},
        pipelines={"faces": True},
        faces={"review": {"keep": 5}},
    )
    queued = c.wait_for(lambda m: m.topic == f"{prefix}/A/event/face" and decode(m.payload)["type"] == "queued", 60)
    event = decode(queued.payload)
    uid = event["unknown_id"]
    listed = ask(c, prefix, "A", "face/unknowns")
    assert [u["id"] for u in listed["unknowns"]] == [uid] and listed["keep"] == 5
    crop = ask(c, prefix, "A", "face/sample", {"sample": uid})["crop"]
    decoded = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (112, 112, 3)

    # named after the fact, without Jeb coming back: another photo of him is now "jeb"
    enrolled = ask(c, prefix, "A", "face/enrol", {"label": "jeb", "unknown_id": uid})
    assert enrolled["added"] == 1 and enrolled["faces"][0]["sample"]
    assert ask(c, prefix, "A", "face/unknowns")["unknowns"] == []
    assert names(c, prefix, "A", img(JEB[2])) == ["jeb"]
    again = c.request(prefix, "A", "face/enrol", {"label": "jeb", "unknown_id": uid})
    assert again["error"]["code"] == "not_found"


def test_review_ring_dismiss_and_purge_commands(make_agent: AgentFactory, c: TestClient, prefix: str) -> None:
    a = make_agent("A")
    ring = a.face_library.ring
    from tests.unit.bank.test_review import item  # one helper for made-up items

    for k in range(3):
        ring.write(item(k))
    assert len(ask(c, prefix, "A", "face/unknowns")["unknowns"]) == 3
    one = ring.newest_first()[0].id
    assert ask(c, prefix, "A", "face/dismiss", {"unknown_id": one}) == {"removed": 1, "unknown_id": one}
    assert ask(c, prefix, "A", "face/dismiss", {"all": True}) == {"removed": 2}
    bad = c.request(prefix, "A", "face/dismiss", {})
    assert bad["error"]["code"] == "bad_request"
    missing = c.request(prefix, "A", "face/dismiss", {"unknown_id": one})
    assert missing["error"]["code"] == "not_found"
    assert isinstance(a, Agent)


def _second_embedder(models_dir: Path, manifest_path: Path, tmp: Path) -> dict[str, Any]:
    """A models folder and manifest that add ``sface_rot`` (tests/onnx_rotate.py) to the real ones."""
    from tests.onnx_rotate import rotated_model

    folder = tmp / "models2"
    folder.mkdir()
    for f in models_dir.glob("*.onnx"):
        (folder / f.name).symlink_to(f.resolve())
    rot = folder / "sface_rot.onnx"
    sha = rotated_model(models_dir / "sface_2021dec.onnx", rot)
    manifest = tmp / "manifest.toml"
    manifest.write_text(
        manifest_path.read_text()
        + f"""
[models.sface_rot]
role = "face_embedder"
file = "sface_rot.onnx"
sha256 = "{sha}"
size = {rot.stat().st_size}
licence = "Apache-2.0"
upstream = "sface_2021dec.onnx with a fixed random rotation of its output (tests/onnx_rotate.py)"
input = {{ name = "data", shape = [1, 3, 112, 112], colour = "rgb", mean = 0.0, scale = 1.0, size = [112, 112] }}
outputs = {{ fc1 = [1, 128] }}
"""
    )
    return {"dir": folder, "manifest": manifest, "face_embedder": "sface_rot"}


def test_model_swap_old_vectors_stop_matching_and_reembed_restores_recognition(
    make_agent: AgentFactory, c: TestClient, prefix: str, img: Callable[[str], bytes], models_dir: Path, tmp_path: Path
) -> None:
    from agent.models import load_manifest

    old = make_agent("A", fleet={"key": KEY}, thresholds=LOOSE)
    for p in GEORGE[:2]:
        ask(c, prefix, "A", "face/enrol", {"label": "george", "image": img(p)})
    ask(c, prefix, "A", "face/reject", {"label": "george", "image": img(JEB[0])})
    assert names(c, prefix, "A", img(GEORGE[2])) == ["george"] and names(c, prefix, "A", img(JEB[1])) == ["unknown"]
    exported = ask(c, prefix, "A", "bank/export", {"bank": "faces", "format": "native"})["data"]
    old.stop()

    models = _second_embedder(models_dir, load_manifest().path, tmp_path)
    new = make_agent("A", fleet={"key": KEY}, thresholds=LOOSE, models=models)  # same state dir, new model
    assert (
        new.services.banks["faces"].model != old.services.banks["faces"].model
        and new.services.banks["faces"].live() == []
    )
    fresh = _state(c, prefix, "A", lambda s: s["models"]["face_embedder"] == "sface_rot")
    assert fresh["reembed"] == {"state": "idle", "available": 3}
    # the old vectors, imported as they are (same length), no longer match anyone
    ask(c, prefix, "A", "bank/import", {"bank": "faces", "format": "native", "data": exported})
    assert [p["samples"] for p in ask(c, prefix, "A", "face/list")["faces"]] == [2]
    assert names(c, prefix, "A", img(GEORGE[0])) == ["unknown"]  # even the very photo enrolled
    assert names(c, prefix, "A", img(GEORGE[2])) == ["unknown"]
    ask(c, prefix, "A", "face/forget", {"label": "george"})

    started = ask(c, prefix, "A", "bank/reembed")
    assert started["state"] == "running" and started["total"] == 3 and started["no_crop"] == 0
    done = _state(c, prefix, "A", lambda s: s.get("reembed", {}).get("state") == "done")["reembed"]
    assert done["added"] == 3 and done["done"] == 3 and done["bad_crop"] == 0, done
    assert names(c, prefix, "A", img(GEORGE[2])) == ["george"]  # recognition is back, from the crops
    assert names(c, prefix, "A", img(JEB[1])) == ["unknown"]  # and so is the correction
    listed = ask(c, prefix, "A", "face/list")["faces"]
    assert [(p["label"], p["samples"], p["negatives"]) for p in listed] == [("george", 2, 1)]
    again = ask(c, prefix, "A", "bank/reembed")
    assert again["state"] == "done" and again["total"] == 0  # idempotent: the same ids are there
    assert new.reembed.state()["available"] == 0
