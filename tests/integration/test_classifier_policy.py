"""Over MQTT: a class taught from a few natural photos is then named on photos it never saw; the
policy and its thresholds change by thresholds/set (and persist); add_sample + learn."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.pipelines.classifier import ClassifierThresholds
from agent.vision.features import crop_box
from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient
from tools.eval_classifier import coco_crops


def _png(img: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".png", img)[1].tobytes()).decode()


def test_class_taught_from_photos_is_named(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    agent = make_agent("pol", limits={"expensive_rate": 0})
    client.subscribe(f"{prefix}/pol/reply/#")

    def req(cmd: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = client.request(prefix, "pol", cmd, body, timeout=60)
        assert r["ok"], (cmd, r)
        return r["data"]  # type: ignore[no-any-return]

    crops = coco_crops(eval_dir / "coco128")
    by_cat: dict[str, list[Any]] = {}
    for c in crops:
        by_cat.setdefault(c.category, []).append(c)
    taught = ("giraffe", "donut", "teddy bear")
    for cat in taught:  # five photos each, taught with their boxes
        for c in by_cat[cat][:5]:
            photo = base64.b64encode(Path(c.image).read_bytes()).decode()
            req("classifier/add_class", {"label": cat, "image": photo, "box": list(c.box)})
    assert [x["views"] for x in req("classifier/list")["classes"]] == [5, 5, 5]

    def ask(c: Any) -> dict[str, Any]:
        img = cv2.imread(c.image)
        assert img is not None, c.image
        return req("infer", {"pipeline": "classifier", "image": _png(crop_box(img, c.box))})

    unseen = [(cat, c) for cat in taught for c in by_cat[cat][5:8]]
    named = [ask(c) for _, c in unseen]
    right = sum(r["label"] == cat for (cat, _), r in zip(unseen, named, strict=True))
    assert right >= 7, [(cat, r["label"], r["similarity"]) for (cat, _), r in zip(unseen, named, strict=True)]
    for r in named:  # MaixPy's ranking is still complete, raw L2, ascending
        assert [d for _, d in r["ranking"]] == sorted(d for _, d in r["ranking"]) and len(r["ranking"]) == 3
        assert r["label"] == "unknown" or (r["score"] >= 0.5 and r["similarity"] >= 0.56)
    # A blank frame is like no class: unknown under the default policy; MaixPy's closed set names it
    blank = _png(np.full((240, 320, 3), 127, np.uint8))
    r = req("infer", {"pipeline": "classifier", "image": blank})
    assert r["label"] == "unknown" and r["class_id"] == -1 and r["score"] < 0.5
    assert req("thresholds/set", {"classifier": {"policy": "maixpy"}})["classifier"]["policy"] == "maixpy"
    r = req("infer", {"pipeline": "classifier", "image": blank})
    assert r["label"] != "unknown" and r["class_id"] == r["ranking"][0][0]
    # The old rule: these photos sit 20-30 apart in raw features, beyond max_distance 14
    req("thresholds/set", {"classifier": {"policy": "max_distance"}})
    assert sum(ask(c)["label"] == cat for cat, c in unseen) <= 2
    bad = client.request(prefix, "pol", "thresholds/set", {"classifier": {"policy": "nearest"}})
    assert bad["error"]["code"] == "bad_request"
    bad = client.request(prefix, "pol", "thresholds/set", {"classifier": {"min_similarity": 2}})
    assert bad["error"]["code"] == "bad_request"
    got = req("thresholds/set", {"classifier": {"policy": "similarity", "min_similarity": 0.99}})["classifier"]
    assert got == {"policy": "similarity", "min_similarity": 0.99, "max_distance": 14.0}
    assert ask(unseen[0][1])["label"] == "unknown"  # nothing unseen is that similar
    assert agent.controls.threshold(ClassifierThresholds).min_similarity == 0.99  # persisted with the controls
    req("thresholds/set", {"classifier": {"min_similarity": 0.56}})
    # add_sample + learn: unlabelled photos of the taught kinds
    for cat in taught:
        for c in by_cat[cat][5:8]:
            photo = base64.b64encode(Path(c.image).read_bytes()).decode()
            req("classifier/add_sample", {"image": photo, "box": list(c.box)})
    learned = req("classifier/learn")
    assert learned["epochs"] > 0 and set(learned["learned"]) <= set(taught) and learned["learned"]
    after = [ask(c) for _, c in unseen]
    assert sum(r["label"] == cat for (cat, _), r in zip(unseen, after, strict=True)) >= right
    assert req("classifier/learn")["epochs"] == 0  # already learned
