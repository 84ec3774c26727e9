"""Benchmark: a JPEG pushed over MQTT to the agent → its faces result, vs OpenCV's own face
pipeline in-process on the same frame.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_frame.py [--rounds N]

The agent runs as a subprocess on a private mosquitto: source ``mqtt``, the faces pipeline only,
YuNet + SFace on the engines it chooses on this machine (its tuning cache, measured here first
when missing), 2 threads a model (``models.threads: 2``), 20 faces enrolled. One round: publish
the one-face 640x480 JPEG (bench_faces' frame, quality 90) on ``frame/in`` with an MQTT 5 ``seq``
user property and wait for ``result/faces`` carrying that ``frame_seq`` (publish → result at the
client); and, in this process, ``cv2.FaceDetectorYN`` + ``cv2.FaceRecognizerSF`` on 2 threads on
the decoded frame matching 20 enrolled (the peer), and the same with the JPEG decode included.
Alternated, shuffled every round, medians. Writes benchmarks/results/bench_frame.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.models import load_manifest
from agent.models.tune import TuneCache, default_cache, key, tune
from agent.mqtt.embedded import EmbeddedBroker
from agent.settings import Settings
from benchmarks.bench_agent import DEV, PREFIX, agent_process, connect, wait_online
from benchmarks.bench_faces import one_face_frame, opencv_pipeline
from benchmarks.common import EVAL, MODELS, Handover, Row, alternate, med, ms, report

ENROLLED = 20
THREADS = 2


def agent_stages(client: Any, after: float) -> dict[str, Any]:
    """The agent's own ``state.stages_ms`` (medians over its last frames), from a state published
    after ``after``."""
    client.subscribe(f"{PREFIX}/{DEV}/state")
    while True:
        m = client.wait_for(lambda m: m.topic.endswith("/state"), 10)
        if time.time() > after:
            stages: dict[str, Any] = json.loads(m.payload).get("stages_ms", {})
            if stages:
                return stages


def run(rounds: int = 40) -> tuple[list[Row], dict[str, Any]]:
    cv2.setNumThreads(THREADS)
    models = {"face_detector": "yunet", "threads": THREADS}
    manifest = load_manifest()
    names = Settings.model_validate({"models": models}).models_in_use()
    # the agent finds its choice cached (a first start would tune before going online)
    tune(manifest, names, MODELS, EVAL, TuneCache(default_cache()), progress=lambda line: print("  " + line))
    frame = one_face_frame()
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    jpeg = buf.tobytes()
    train = sorted((EVAL / "faces" / "knn_examples" / "train").glob("*/*"))
    broker = EmbeddedBroker().start()
    try:
        with tempfile.TemporaryDirectory(prefix="maix-bench-") as td:
            cfg: dict[str, Any] = {
                "source": {"uri": "mqtt"},
                "pipelines": {"faces": True, "track": False, "segment": False, "classifier": False},
                "models": models,
                "results": {"state_interval": 0.5},
            }
            with agent_process(broker.port, Path(td) / "state", **cfg):
                client = connect(broker.port)
                try:
                    wait_online(client, timeout=180)
                    engines = client.request(PREFIX, DEV, "system/info", {}, timeout=60)["data"]["engines"]
                    for i in range(ENROLLED):
                        img = base64.b64encode(train[i % len(train)].read_bytes()).decode()
                        body = {"label": f"person_{i}", "image": img, "pick": "largest"}
                        r = client.request(PREFIX, DEV, "face/enrol", body, timeout=120)
                        assert r["ok"], r
                    client.subscribe(f"{PREFIX}/{DEV}/result/faces")
                    seq = [0]

                    def over_mqtt() -> object:
                        seq[0] += 1
                        want = str(seq[0])
                        client.publish(f"{PREFIX}/{DEV}/frame/in", jpeg, qos=0, user={"seq": want})
                        return client.wait_for(
                            lambda m: (
                                m.topic.endswith("/result/faces")
                                and str(msgpack.unpackb(m.payload).get("frame_seq")) == want
                            ),
                            timeout=60,
                        )

                    msg = msgpack.unpackb(over_mqtt().payload)  # type: ignore[attr-defined]
                    assert len(msg["faces"]) == 1, msg
                    rng = np.random.default_rng(0)
                    bank = rng.normal(size=(ENROLLED, 128)).astype(np.float32)
                    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
                    labels = [f"person_{i}" for i in range(ENROLLED)]
                    handover = Handover(frame)
                    opencv = opencv_pipeline(
                        manifest.get("yunet").file, manifest.get("sface").file, bank, labels, handover
                    )

                    def opencv_jpeg() -> object:
                        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                        assert decoded is not None
                        handover.frame = np.asarray(decoded, np.uint8)
                        return opencv()

                    cases = {"mqtt": over_mqtt, "opencv": opencv, "opencv with decode": opencv_jpeg}
                    times = alternate(cases, rounds, warmup=5, before=handover)
                    stages = agent_stages(client, time.time())
                finally:
                    client.close()
    finally:
        broker.cleanup()
    m = {k: med(v) for k, v in times.items()}
    chosen = ", ".join(
        f"{n} {key(engines[n]['engine'], engines[n]['threads'], engines[n]['spin'])}" for n in ("yunet", "sface")
    )
    ratio = m["opencv"] / m["mqtt"]
    rows = [
        Row(
            "faces",
            f"over MQTT: 1-face 640x480 JPEG publish → result/faces ({chosen}, 20 enrolled) vs OpenCV "
            "FaceDetectorYN + FaceRecognizerSF in-process on the same frame, both 2 threads",
            ms(m["mqtt"]),
            ms(m["opencv"]),
            ratio,
            "> 1x",
            ratio > 1.0,
            note=f"OpenCV including the JPEG decode: {ms(m['opencv with decode'])} "
            f"({m['opencv with decode'] / m['mqtt']:.2f}x); agent stages (median ms): "
            + ", ".join(f"{k} {v}" for k, v in stages.items()),
        )
    ]
    return rows, {"median_ms": m, "rounds": rounds, "engines": engines, "stages_ms": stages, "time": time.time()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    rows, details = run(args.rounds)
    report("bench_frame", rows, details)


if __name__ == "__main__":
    main()
