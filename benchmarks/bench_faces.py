"""Benchmark: face recognition end to end vs the models alone vs OpenCV's own face pipeline.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_faces.py [--rounds N] [--threads N …]

A 640x480 frame with one face (faces/obama.jpg fitted into 640x480). The agent: YuNet + SFace,
each on the engine the agent chooses on this machine (``models tune``'s cache, measured when
missing) at ``--threads`` threads a model, detect → align → embed → match against 1,000 enrolled
vectors → the ``faces`` result built (what ``FaceService.recognise`` returns for a live frame).
The models alone: YuNet on the frame's blob + SFace on the aligned face's blob (same sessions).
The same pipeline with both models on one engine (onnxruntime only, OpenCV DNN only). The peer: OpenCV's
``FaceDetectorYN`` + ``FaceRecognizerSF`` on the same model files (detect, ``alignCrop``,
``feature``, cosine against the same 1,000 vectors with NumPy, the same result built). All three
run alternately, each on a fresh copy of the frame (as the agent's source hands over a frame it
has just decoded); median per frame. Writes benchmarks/results/bench_faces.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath
from agent.models import load_manifest
from agent.models.tune import Choice, TuneCache, choose, default_cache, tune
from agent.vision.face_align import align_blob
from agent.vision.faces import FacePipeline, FaceTracks
from agent.vision.runtime import ENGINES, load_model
from benchmarks.common import EVAL, MODELS, Handover, Row, alternate, med, ms, report

Image = npt.NDArray[np.uint8]
ENROLLED = 1000


def one_face_frame() -> Image:
    """faces/obama.jpg scaled to 480 px high and centred on a 640x480 grey canvas."""
    img = cv2.imread(str(EVAL / "faces" / "obama.jpg"), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(EVAL / "faces" / "obama.jpg")
    h, w = img.shape[:2]
    nw = round(w * 480 / h)
    small = cv2.resize(img, (nw, 480), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 114, np.uint8)
    x0 = (640 - nw) // 2
    canvas[:, x0 : x0 + nw] = small
    return canvas


def chosen_engines(names: tuple[str, ...], threads: int, engine: str | None = None) -> dict[str, Choice]:
    """The agent's choice for ``names`` at ``threads`` threads a model (``models.threads``), from
    the agent's own tuning cache (measured now when missing or stale); with ``engine``, its best
    configuration on that engine alone (``models.engine: <engine>``)."""
    manifest = load_manifest()
    tunes = tune(manifest, names, MODELS, EVAL, TuneCache(default_cache()), progress=lambda line: print("  " + line))
    return choose(tunes, (threads,), {n: engine for n in names} if engine else None)


def loaded(spec: Any, c: Choice) -> Any:
    return load_model(spec, MODELS, c.engine, c.threads, c.spin)


def _same(a: dict[str, Choice], b: dict[str, Choice]) -> bool:
    """The same engine, threads and spinning for every model (however each was chosen)."""
    return {n: (c.engine, c.threads, c.spin) for n, c in a.items()} == {
        n: (c.engine, c.threads, c.spin) for n, c in b.items()
    }


def describe(choice: dict[str, Choice]) -> str:
    return ", ".join(f"{n} {c.candidate}" for n, c in choice.items())


def one_run(rounds: int, threads: int) -> tuple[list[Row], dict[str, Any]]:
    cv2.setNumThreads(threads)  # OpenCV's pool is process-wide: every OpenCV contender gets ``threads``
    manifest = load_manifest()
    det_spec, emb_spec = manifest.get("yunet"), manifest.get("sface")
    names = ("yunet", "sface")
    choice = chosen_engines(names, threads)
    single = {e: chosen_engines(names, threads, e) for e in ENGINES}  # each engine's best configuration

    def pipeline(c: dict[str, Choice]) -> FacePipeline:
        return FacePipeline(loaded(det_spec, c["yunet"]), "yunet", loaded(emb_spec, c["sface"]))

    pipe = pipeline(choice)
    # an engine whose best configuration is the agent's choice is the agent's pipeline itself
    singles = {e: pipe if _same(single[e], choice) else pipeline(single[e]) for e in ENGINES}
    handover = Handover(one_face_frame())
    frame = handover.frame  # for the setup; the cases read handover.frame
    faces = pipe.detect(frame)
    if len(faces) != 1:
        raise RuntimeError(f"expected one face in the benchmark frame, found {len(faces)}")
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(ENROLLED, 128)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    bank[17] = pipe.embed(frame, faces[0])  # the person is enrolled (one of 1,000 samples)
    labels = [f"person_{i // 4}" for i in range(ENROLLED)]

    def end_to_end(p: FacePipeline) -> Callable[[], object]:
        tracks = FaceTracks()
        return lambda: {"faces": p.recognise(handover.frame, bank, labels, detect_th=0.6, tracks=tracks)}

    agent = end_to_end(pipe)
    single_cases = {f"{e} only": end_to_end(p) for e, p in singles.items() if p is not pipe}
    det_blob, _ = pipe.detector.preprocess(frame)
    emb_blob = align_blob(frame, faces[0].points, 112, rgb=True)

    def models_only() -> object:
        pipe.detector.model(det_blob)
        return pipe.embedder(emb_blob)

    opencv = opencv_pipeline(det_spec.file, emb_spec.file, bank, labels, handover)
    for _ in range(3):  # the live per-track vote names a face from its third frame on
        result = agent()
        for fn in single_cases.values():
            fn()
    assert isinstance(result, dict) and result["faces"][0]["label"] == labels[17], result
    assert opencv()["faces"][0]["label"] == labels[17]
    cases = {"agent": agent, "models": models_only, "opencv": opencv, **single_cases}
    times = alternate(cases, rounds, before=handover)
    m = {k: med(v) for k, v in times.items()}
    for e, p in singles.items():
        if p is pipe:  # the agent's choice is this engine's best: the same run
            m[f"{e} only"] = m["agent"]
    best_single = min((f"{e} only" for e in ENGINES), key=lambda k: m[k])
    engines = describe(choice)
    r_models, r_cv, r_single = m["agent"] / m["models"], m["opencv"] / m["agent"], m[best_single] / m["agent"]
    tag = f"{threads} thread{'s' if threads > 1 else ''}"
    rows = [
        Row(
            "faces",
            f"YuNet+SFace 640x480, 1 face, match vs 1,000 → result ({engines}), {tag}: end to end vs the "
            "two models alone",
            ms(m["agent"]),
            ms(m["models"]),
            r_models,
            "<= 1.10x",
            r_models <= 1.10,
        ),
        Row(
            "faces",
            f"the same, {tag}, vs OpenCV FaceDetectorYN + FaceRecognizerSF (same files, same frame)",
            ms(m["agent"]),
            ms(m["opencv"]),
            r_cv,
            ">= 1.15x",
            r_cv >= 1.15,
        ),
        Row(
            "faces",
            f"the same, {tag}, vs the best single engine for both models, each model in its fastest "
            f"configuration on it ({best_single}; "
            + "; ".join(
                f"{e} only {describe(single[e])}: "
                + ("the agent's choice" if singles[e] is pipe else ms(m[f"{e} only"]))
                for e in ENGINES
            )
            + ")",
            ms(m["agent"]),
            ms(m[best_single]),
            r_single,
            ">= 1.0x",
            r_single >= 1.0,
        ),
    ]
    return rows, {
        "median_ms": m,
        "threads": threads,
        "rounds": rounds,
        "engines": {k: c.as_dict() for k, c in choice.items()},
        "single_engines": {e: {k: c.as_dict() for k, c in single[e].items()} for e in ENGINES},
    }


def opencv_pipeline(
    det_file: str, emb_file: str, bank: np.ndarray, labels: list[str], handover: Handover
) -> Callable[[], dict[str, Any]]:
    """What a user writes with OpenCV alone: FaceDetectorYN + FaceRecognizerSF, NumPy matching."""
    yn = cv2.FaceDetectorYN.create(str(MODELS / det_file), "", (640, 480), 0.6, 0.3, 5000)
    sf = cv2.FaceRecognizerSF.create(str(MODELS / emb_file), "")
    label_names = list(dict.fromkeys(labels))
    label_of = np.array([label_names.index(lb) for lb in labels])

    def opencv() -> dict[str, Any]:
        frame = handover.frame
        _, found = yn.detect(frame)
        out = []
        for row in found if found is not None else []:
            feat = sf.feature(sf.alignCrop(frame, row)).reshape(-1)
            feat = feat / (np.linalg.norm(feat) + 1e-12)
            scores = 0.5 + 0.5 * (bank @ feat)
            best = int(np.argmax(scores))
            named = scores[best] > 0.7
            out.append(
                {
                    "box": [round(float(v)) for v in row[:4]],
                    "score": round(float(row[14]), 4),
                    "points": [[round(float(row[4 + 2 * i]), 1), round(float(row[5 + 2 * i]), 1)] for i in range(5)],
                    "label": label_names[label_of[best]] if named else "unknown",
                    "class_id": int(label_of[best]) + 1 if named else 0,
                    "similarity": round(float(scores[best]), 4),
                }
            )
        return {"faces": out}

    return opencv


def run(rounds: int = 60, threads: int | tuple[int, ...] = (1, 2)) -> tuple[list[Row], dict[str, Any]]:
    """The rows at each thread count (the agent's models and OpenCV's on the same count)."""
    fastpath.set_implementation("cython")
    counts = (threads,) if isinstance(threads, int) else threads
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for t in counts:
        r, d = one_run(rounds, t)
        rows += r
        details[f"threads_{t}"] = d
    return rows, details


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    rows, details = run(args.rounds, tuple(args.threads))
    report("bench_faces", rows, details)


if __name__ == "__main__":
    main()
