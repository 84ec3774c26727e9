"""The vision commands over a real broker: classifier, faces, tracking with pushed frames, infer,
snapshot, bank export/import, and results streamed from a video source."""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np

from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient, decode
from tools.eval_track import iou


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_classifier_commands(make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path) -> None:
    make_agent("cl")
    client.subscribe(f"{prefix}/cl/reply/#")
    images = eval_dir / "images"

    def req(cmd: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return client.request(prefix, "cl", cmd, body, timeout=60)

    r = req("classifier/add_sample", {"image": b64(images / "coffee.png")})
    assert r["error"]["code"] == "conflict"  # MaixPy refuses samples before a class exists
    assert req("classifier/add_class", {"label": "moto", "image": b64(images / "motorcycle_left.png")})["ok"]
    r = req("classifier/add_class", {"label": "cat", "image": b64(images / "chelsea.png")})
    assert r["data"] == {"label": "cat", "class_id": 1, "views": 1}
    r = req("classifier/add_class", {"label": "moto", "image": b64(images / "motorcycle_right.png")})
    assert r["data"]["views"] == 2 and r["data"]["class_id"] == 0
    r = req("infer", {"pipeline": "classifier", "image": b64(images / "motorcycle_right.png")})
    data = r["data"]
    assert data["label"] == "moto" and data["class_id"] == 0 and data["score"] > 0.5
    assert [c for c, _ in data["ranking"]] == [0, 1] and data["ranking"][0][1] <= data["ranking"][1][1]
    assert {"v", "dev", "seq", "ts", "w", "h"} <= set(data)
    req("thresholds/set", {"classifier": {"policy": "max_distance"}})
    r = req("infer", {"pipeline": "classifier", "image": b64(images / "astronaut.png")})
    assert r["data"]["label"] == "unknown" and r["data"]["class_id"] == -1  # beyond max_distance
    req(
        "thresholds/set", {"classifier": {"policy": "similarity"}}
    )  # the default (tests/integration/test_classifier_policy.py)
    assert req("classifier/add_sample", {"image": b64(images / "motorcycle_left.png"), "box": [0, 0, 300, 300]})["ok"]
    assert req("classifier/learn")["data"]["epochs"] >= 0
    listed = req("classifier/list")["data"]
    assert [c["label"] for c in listed["classes"]] == ["moto", "cat"] and listed["samples"] == 1
    assert (
        req("classifier/add_class", {"label": "x", "image": b64(images / "coffee.png"), "box": [9000, 0, 5, 5]})[
            "error"
        ]["code"]
        == "bad_request"
    )
    assert req("classifier/remove_class", {"label": "nope"})["error"]["code"] == "not_found"
    assert req("classifier/remove_class", {"label": "moto"})["data"]["removed"] == 2
    assert [c["label"] for c in req("classifier/list")["data"]["classes"]] == ["cat"]
    assert req("classifier/clear")["ok"] and req("classifier/list")["data"] == {
        "classes": [],
        "samples": 0,
        "dim": 1280,
    }


def test_face_commands_and_export_import(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    make_agent("fc")
    client.subscribe(f"{prefix}/fc/reply/#")
    faces = eval_dir / "faces"

    def req(cmd: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return client.request(prefix, "fc", cmd, body, timeout=60)

    assert req("face/enrol", {"image": b64(faces / "obama.jpg")})["error"]["code"] == "bad_request"  # label needed
    r = req("face/enrol", {"label": "barack", "image": b64(faces / "obama.jpg")})
    assert r["data"]["label"] == "barack" and r["data"]["added"] == 1
    assert req("face/enrol", {"label": "barack", "image": b64(faces / "obama2.jpg")})["data"]["added"] == 1
    nobody = np.full((240, 320, 3), 127, np.uint8)
    r = req("face/enrol", {"label": "x", "image": base64.b64encode(jpeg(nobody)).decode()})
    assert r["error"]["code"] == "not_found"
    r = req("infer", {"pipeline": "faces", "image": b64(faces / "two_people.jpg")})
    labels = sorted(f["label"] for f in r["data"]["faces"])
    assert labels == ["barack", "unknown"]
    # MaixPy's learn button: every unknown face gets an id_N label
    r = req("face/enrol", {"pick": "unknown", "image": b64(faces / "two_people.jpg")})
    assert r["data"]["added"] == 1 and r["data"]["label"] == "id_2"
    assert req("face/rename", {"label": "id_2", "to": "joe"})["data"]["moved"] == 1
    assert req("face/rename", {"label": "joe", "to": "barack"})["error"]["code"] == "conflict"
    listed = req("face/list")["data"]["faces"]  # the face library adds sample ids, negatives, …
    assert [{k: p[k] for k in ("label", "class_id", "samples")} for p in listed] == [
        {"label": "barack", "class_id": 1, "samples": 2},
        {"label": "joe", "class_id": 2, "samples": 1},
    ]
    # export as MaixPy faces.bin, check its layout by hand, forget everything, import it back
    exported = req("bank/export", {"bank": "faces", "format": "maixpy"})["data"]
    data = base64.b64decode(exported["data"])
    label, rest = data.split(b"\0", 1)
    (n,) = struct.unpack("<H", rest[:2])
    assert label == b"barack" and n == 128 and exported["entries"] == 3
    assert req("face/forget", {"label": "barack"})["data"]["removed"] == 2
    assert req("face/forget", {"label": "joe"})["ok"]
    assert req("face/list")["data"]["faces"] == []
    assert req("bank/import", {"bank": "faces", "format": "maixpy", "data": exported["data"]})["data"]["added"] == 3
    r = req("infer", {"pipeline": "faces", "image": b64(faces / "two_people.jpg")})
    assert sorted(f["label"] for f in r["data"]["faces"]) == ["barack", "joe"]
    bad = base64.b64encode(b"label\0\x80\x00" + b"\0" * 8).decode()  # 128 floats announced, 2 given
    assert req("bank/import", {"bank": "faces", "format": "maixpy", "data": bad})["error"]["code"] == "bad_request"
    # a file whose second record is bad is refused whole: nothing of it lands in the bank
    vec = struct.pack("<H", 128) + np.ones(128, np.float32).tobytes()
    half_bad = base64.b64encode(b"ann\0" + vec + b"\0" + vec).decode()  # second label empty
    assert req("bank/import", {"bank": "faces", "format": "maixpy", "data": half_bad})["error"]["code"] == "bad_request"
    assert [f["label"] for f in req("face/list")["data"]["faces"]] == ["barack", "joe"]


def test_track_with_pushed_frames(make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path) -> None:
    make_agent("tr", source={"uri": "mqtt"}, pipelines={"track": True})
    client.subscribe(f"{prefix}/tr/reply/#", f"{prefix}/tr/result/track")
    seq = eval_dir / "tracking" / "vot15_bag"
    frames = sorted((seq / "imgs").glob("*.jpg"))[:12]
    gt_lines = (seq / "groundtruth.txt").read_text().splitlines()

    def gt(i: int) -> list[float]:
        v = [float(a) for a in gt_lines[i].split(",")]
        xs, ys = v[0::2], v[1::2]
        return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]

    box = gt(0)
    assert client.request(prefix, "tr", "track/start", {"box": box})["error"]["code"] == "unavailable"  # no frame yet
    r = client.request(prefix, "tr", "track/start", {"box": box, "image": b64(frames[0])}, timeout=60)
    assert r["ok"] and r["data"]["state"] == "tracking"
    results = []
    for path in frames[1:]:
        client.publish(f"{prefix}/tr/frame/in", path.read_bytes())
        msg = client.wait_for(lambda m: m.topic.endswith("result/track"), timeout=60)
        results.append(msgpack.unpackb(msg.payload))
    assert [r["seq"] for r in results] == sorted(r["seq"] for r in results)
    assert all(r["state"] == "tracking" and r["score"] >= 0.9 for r in results)
    # the bag moves ~50 px up in these frames: the last box must still cover it
    last, want = results[-1]["box"], gt(len(frames) - 1)
    assert iou(last, want) > 0.5
    assert [r["target"] for r in results] == [r["data"]["target"]] * len(results)
    assert {"v", "dev", "seq", "ts", "w", "h", "box", "score", "state"} <= set(results[-1])
    client.publish(f"{prefix}/tr/frame/in", b"not an image")  # dropped and counted, never fatal
    assert client.request(prefix, "tr", "track/stop")["data"]["stopped"] is True
    assert (
        client.request(prefix, "tr", "infer", {"pipeline": "track", "image": b64(frames[0])})["error"]["code"]
        == "conflict"
    )


def test_video_stream_results_and_snapshot(
    make_agent: AgentFactory, client: TestClient, prefix: str, eval_dir: Path
) -> None:
    video = eval_dir / "tracking" / "vot15_bag" / "bag.avi"
    make_agent("vid", source={"uri": f"video:{video}", "loop": True}, pipelines={"segment": True})
    client.subscribe(f"{prefix}/vid/result/segments", f"{prefix}/vid/snapshot", f"{prefix}/vid/reply/#")
    msgs = [decode(client.wait_for(lambda m: m.topic.endswith("result/segments"), 60).payload) for _ in range(3)]
    assert all(m["w"] == 480 and m["h"] == 360 and isinstance(m["objects"], list) for m in msgs)
    assert msgs[0]["seq"] < msgs[1]["seq"] < msgs[2]["seq"]
    for m in msgs:
        for obj in m["objects"]:
            assert {"class_id", "label", "score", "box", "polygons", "area"} <= set(obj)
    r = client.request(prefix, "vid", "snapshot", {"draw": True})
    assert r["ok"] and r["data"]["draw"] is True
    # the JPEG is published before the reply, so it may already be in the client's history
    shots = [m for m in client.all if m.topic.endswith("/snapshot")]
    shot = shots[0] if shots else client.wait_for(lambda m: m.topic.endswith("/snapshot"), 30)
    img = cv2.imdecode(np.frombuffer(shot.payload, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (360, 480, 3)
    state = client.request(prefix, "vid", "system/info")["data"]
    assert state["source"].startswith("video:")


def test_infer_rejects_bad_images(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    make_agent("bad", limits={"image_pixels": 10_000})
    client.subscribe(f"{prefix}/bad/reply/#")
    big = base64.b64encode(jpeg(np.zeros((200, 200, 3), np.uint8))).decode()
    for body, code in [
        ({"pipeline": "faces", "image": "!!notbase64"}, "bad_request"),
        ({"pipeline": "faces", "image": base64.b64encode(b"GIF89a....").decode()}, "bad_request"),
        ({"pipeline": "faces", "image": big}, "bad_request"),  # 40,000 pixels > limit
        ({"pipeline": "nope", "image": big}, "bad_request"),
        ({"pipeline": "faces"}, "unavailable"),  # no source frame yet
    ]:
        r = client.request(prefix, "bad", "infer", body)
        assert r["error"]["code"] == code, (body.get("pipeline"), r)
