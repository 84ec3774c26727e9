"""Faces through MQTT: enrol knn_examples/train with face/enrol, name every test face with infer;
the stranger is unknown. Detection recall on the dlib hand-marked boxes."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient
from tools.eval_track import iou

# who is in each knn test photo (file names name them; the child in obama_and_biden is nobody)
EXPECTED = {
    "alex_lacamoire1.jpg": {"alex_lacamoire"},
    "johnsnow_test1.jpg": {"kit_harington"},
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "obama1.jpg": {"obama"},
    "obama_and_biden.jpg": {"obama", "biden"},
}


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _infer(mqtt: TestClient, prefix: str, path: Path) -> dict[str, Any]:
    reply = mqtt.request(prefix, "acc", "infer", {"pipeline": "faces", "image": _b64(path)}, timeout=120)
    assert reply["ok"], reply
    return reply["data"]  # type: ignore[no-any-return]


@pytest.mark.accuracy
def test_knn_identities_and_stranger(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path, engine: str
) -> None:
    make_agent("acc", models={"engine": engine})
    client.subscribe(f"{prefix}/acc/reply/#")
    knn = eval_dir / "faces" / "knn_examples"
    people = sorted(p.name for p in (knn / "train").iterdir() if p.is_dir())
    assert people == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
    for person in people:
        for img in sorted((knn / "train" / person).iterdir()):
            r = client.request(prefix, "acc", "face/enrol", {"label": person, "image": _b64(img)}, timeout=120)
            assert r["ok"] and r["data"]["added"] == 1, (img, r)
    listed = client.request(prefix, "acc", "face/list")["data"]["faces"]
    assert {f["label"] for f in listed} == set(people)
    named = 0
    for name, who in EXPECTED.items():
        faces = _infer(client, prefix, knn / "test" / name)["faces"]
        labels = [f["label"] for f in faces if f["label"] != "unknown"]
        assert sorted(labels) == sorted(who), (name, faces)
        named += len(labels)
    assert named == 7
    stranger = _infer(client, prefix, eval_dir / "faces" / "lin-manuel-miranda.png")["faces"]
    assert stranger and all(f["label"] == "unknown" and f["class_id"] == 0 for f in stranger), stranger


def _recall(truth: dict[str, list[list[float]]], found: dict[str, list[list[float]]], th: float) -> float:
    hit = total = 0
    for name, boxes in truth.items():
        pool = list(found.get(name, []))
        for box in boxes:
            total += 1
            scores = [iou(box, f) for f in pool]
            if scores and max(scores) >= th:
                hit += 1
                pool.pop(scores.index(max(scores)))
    return hit / total


@pytest.mark.accuracy
def test_detection_recall_on_dlib_boxes(infer: Any, engine: str, eval_dir: Path, record_property: Any) -> None:
    folder = eval_dir / "faces" / "dlib_boxes"
    truth: dict[str, list[list[float]]] = {}
    for xml in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / xml).getroot().iter("image"):
            boxes = [[float(b.get(k, 0)) for k in ("left", "top", "width", "height")] for b in image.iter("box")]
            truth.setdefault(image.get("file", ""), []).extend(boxes)
    assert sum(len(v) for v in truth.values()) == 43
    lines = infer(["faces", *[str(folder / f) for f in truth]])
    found = {Path(line["image"]).name: [f["box"] for f in line["faces"]] for line in lines}
    r40, r50 = _recall(truth, found, 0.4), _recall(truth, found, 0.5)
    record_property("recall_iou40", r40)
    record_property("recall_iou50", r50)
    print(f"dlib recall ({engine}): IoU0.4 {r40:.3f}, IoU0.5 {r50:.3f}")
    assert r40 >= 0.9
