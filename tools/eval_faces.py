"""Print the face pipeline's figures on ../shared/eval/faces, for RetinaFace and YuNet.

- calibration: every pair of labelled faces (duplicate files counted once), same-person and
  different-person score (0.5 + 0.5 cos) distributions, and the threshold in the middle of the gap;
- knn: enrol knn_examples/train (one label per folder, every image), recognise knn_examples/test
  (7 named faces in 5 photos; any other face must come out unknown);
- stranger: lin-manuel-miranda.png against that bank must be unknown (alex-lacamoire.png named);
- detection recall on dlib_boxes (43 boxes, training.xml + testing.xml) at IoU 0.4 and 0.5, for the
  raw box and for a square box (dlib's boxes are tight squares: side = box width, centred on the
  5 landmarks' mean), plus the number of detections matching no box;
- short_hamilton_clip.mp4 with two people enrolled: label changes per track, single-shot vs voted;
- per-call time of detect (640x480 frame) and embed (one face).

Usage: .venv/bin/python tools/eval_faces.py [--detector retinaface|yunet|both] [--eval-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.models import load_manifest  # noqa: E402
from agent.vision.face_decision import DecisionRule  # noqa: E402
from agent.vision.face_detect import Face  # noqa: E402
from agent.vision.faces import (  # noqa: E402
    DEFAULT_MATCH,
    UNKNOWN,
    FacePipeline,
    FaceTracks,
    box_iou,
)
from agent.vision.runtime import OnnxModel  # noqa: E402

# Who is in each multi-face photo, faces ordered left to right (None = not enrolled).
TEST_FACES: dict[str, list[str | None]] = {
    "alex_lacamoire1.jpg": ["alex_lacamoire"],
    "johnsnow_test1.jpg": ["kit_harington"],
    "kit_with_rose.jpg": ["rose_leslie", "kit_harington"],
    "obama1.jpg": ["obama"],
    "obama_and_biden.jpg": ["biden", "obama", None],  # + a child in the corner, not enrolled
}
EXTRA_FACES: dict[str, list[str | None]] = {
    "obama.jpg": ["obama"],
    "obama2.jpg": ["obama"],
    "biden.jpg": ["biden"],
    "two_people.jpg": ["obama", "biden"],
    "alex-lacamoire.png": ["alex_lacamoire"],
    "lin-manuel-miranda.png": ["lin_manuel_miranda"],
}

Labelled = tuple[str, np.ndarray]  # (identity, embedding)


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


def left_to_right(faces: list[Face], n: int) -> list[Face]:
    """The ``n`` best faces, ordered by box centre x."""
    return sorted(faces[:n], key=lambda f: f.box[0] + f.box[2] / 2)


def labelled_faces(pipe: FacePipeline, root: Path) -> list[Labelled]:
    """Every identity-known face in the eval set, each distinct file once."""
    seen: set[str] = set()
    out: list[Labelled] = []
    jobs: list[tuple[Path, list[str | None]]] = []
    for person in sorted((root / "knn_examples" / "train").iterdir()):
        jobs += [(p, [person.name]) for p in sorted(person.iterdir())]
    jobs += [(root / "knn_examples" / "test" / k, v) for k, v in TEST_FACES.items()]
    jobs += [(root / k, v) for k, v in EXTRA_FACES.items()]
    for path, who in jobs:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        frame = read(path)
        faces = left_to_right(pipe.detect(frame), len(who))
        for face, name in zip(faces, who, strict=False):
            if name is not None:
                out.append((name, pipe.embed(frame, face)))
    return out


def calibration(items: list[Labelled]) -> tuple[list[float], list[float]]:
    same: list[float] = []
    diff: list[float] = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            score = 0.5 + 0.5 * float(items[i][1] @ items[j][1])
            (same if items[i][0] == items[j][0] else diff).append(score)
    return same, diff


def enrol_train(pipe: FacePipeline, root: Path) -> tuple[np.ndarray, list[str]]:
    vectors: list[np.ndarray] = []
    labels: list[str] = []
    for person in sorted((root / "knn_examples" / "train").iterdir()):
        for path in sorted(person.iterdir()):
            frame = read(path)
            picked = pipe.enrol_candidates(frame, None, [], "largest")
            for _, vec in picked:
                vectors.append(vec)
                labels.append(person.name)
    return np.stack(vectors), labels


def knn_test(pipe: FacePipeline, root: Path, bank: np.ndarray, labels: list[str], th: float) -> None:
    correct = total = extra_ok = extra = 0
    for name, who in TEST_FACES.items():
        frame = read(root / "knn_examples" / "test" / name)
        res = pipe.recognise(frame, bank, labels, rule=DecisionRule(match=th))
        res = sorted(res[: len(who)], key=lambda r: r["box"][0] + r["box"][2] / 2)
        got = [(r["label"], r["similarity"]) for r in res]
        for r, want in zip(res, who, strict=False):
            if want is None:
                extra += 1
                extra_ok += r["label"] == UNKNOWN
            else:
                total += 1
                correct += r["label"] == want
        print(f"    {name:22s} want {who} got {got}")
    print(f"  knn test: {correct}/{total} named correctly; not-enrolled faces unknown {extra_ok}/{extra}")


def stranger(pipe: FacePipeline, root: Path, bank: np.ndarray, labels: list[str], th: float) -> None:
    for name in ("lin-manuel-miranda.png", "alex-lacamoire.png"):
        res = pipe.recognise(read(root / name), bank, labels, rule=DecisionRule(match=th))
        print(f"  {name}: " + ", ".join(f"{r['label']} (similarity {r['similarity']:.4f})" for r in res))


def dlib_boxes(root: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    for xml in ("training.xml", "testing.xml"):
        for image in ET.parse(root / "dlib_boxes" / xml).getroot().iter("image"):
            boxes.setdefault(image.attrib["file"], []).extend(
                (
                    float(b.attrib["left"]),
                    float(b.attrib["top"]),
                    float(b.attrib["width"]),
                    float(b.attrib["height"]),
                )
                for b in image.iter("box")
            )
    return boxes


def square(face: Face) -> tuple[float, float, float, float]:
    side = face.box[2]
    cx, cy = face.points.mean(axis=0).tolist()
    return (cx - side / 2, cy - side / 2, side, side)


def recall(pipe: FacePipeline, root: Path) -> None:
    truth = dlib_boxes(root)
    n = sum(len(v) for v in truth.values())
    hits = {(kind, th): 0 for kind in ("raw", "square") for th in (0.4, 0.5)}
    unmatched = 0
    for name, gts in truth.items():
        faces = pipe.detect(read(root / "dlib_boxes" / name))
        for kind in ("raw", "square"):
            dets = [f.box if kind == "raw" else square(f) for f in faces]
            for gt in gts:
                best = max((box_iou(gt, d) for d in dets), default=0.0)
                for th in (0.4, 0.5):
                    hits[(kind, th)] += best >= th
        unmatched += sum(max((box_iou(g, square(f)) for g in gts), default=0.0) < 0.4 for f in faces)
    dogs = len(pipe.detect(read(root / "dlib_boxes" / "dogs.jpg")))
    for kind in ("raw", "square"):
        at4, at5 = hits[(kind, 0.4)], hits[(kind, 0.5)]
        print(f"  dlib recall ({kind} box): @0.4 {at4}/{n} = {at4 / n:.3f}, @0.5 {at5}/{n} = {at5 / n:.3f}")
    print(f"  detections matching no dlib box (IoU<0.4, square): {unmatched}; on dogs.jpg: {dogs}")


def video(pipe: FacePipeline, root: Path, th: float) -> None:
    """short_hamilton_clip.mp4 with lin-manuel-miranda + alex_lacamoire enrolled: label changes
    per track, single-shot vs voted (FaceTracks defaults)."""
    vectors: list[np.ndarray] = []
    labels: list[str] = []
    for name, label in (
        ("lin-manuel-miranda.png", "lin_manuel_miranda"),
        ("alex-lacamoire.png", "alex_lacamoire"),
    ):
        for _, vec in pipe.enrol_candidates(read(root / name), None, [], "largest"):
            vectors.append(vec)
            labels.append(label)
    bank = np.stack(vectors)
    tracks = FaceTracks()
    shadow = FaceTracks(majority=1, window=1)  # same association, no voting
    cap = cv2.VideoCapture(str(root / "short_hamilton_clip.mp4"))
    last: dict[str, dict[int, str]] = {"single-shot": {}, "voted": {}}
    flips = {"single-shot": 0, "voted": 0}
    seen: dict[str, Counter[str]] = {"single-shot": Counter(), "voted": Counter()}
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames += 1
        voted = pipe.recognise(frame, bank, labels, rule=DecisionRule(match=th), tracks=tracks)
        single = pipe.recognise(frame, bank, labels, rule=DecisionRule(match=th), tracks=shadow)
        for kind, results in (("voted", voted), ("single-shot", single)):
            for r in results:
                prev = last[kind].get(r["track_id"])
                flips[kind] += prev is not None and prev != r["label"]
                last[kind][r["track_id"]] = r["label"]
                seen[kind][r["label"]] += 1
    cap.release()
    for kind in ("single-shot", "voted"):
        print(
            f"  hamilton clip ({frames} frames) {kind}: label changes within a track "
            f"{flips[kind]}, faces by label {dict(seen[kind])}"
        )


def timings(pipe: FacePipeline, root: Path, runs: int = 30) -> None:
    frame = cv2.resize(read(root / "two_people.jpg"), (640, 480), interpolation=cv2.INTER_AREA)
    faces = pipe.detect(frame)
    det_blob, _ = pipe.detector.preprocess(frame)
    emb_blob = pipe.embed_blob(frame, faces[0])
    calls: dict[str, Callable[[], object]] = {
        "detect": lambda: pipe.detect(frame),
        "embed": lambda: pipe.embed(frame, faces[0]),
        "detector model only": lambda: pipe.detector.model(det_blob),
        "embedder model only": lambda: pipe.embedder(emb_blob),
    }
    figures: list[str] = []
    for name, call in calls.items():
        ms: list[float] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            call()
            ms.append((time.perf_counter() - t0) * 1e3)
        figures.append(f"{name} {statistics.median(ms):.1f} ms")
    print(f"  time at 640x480 (median of {runs}, one face): " + ", ".join(figures))


def stats(xs: list[float]) -> str:
    return f"n={len(xs)} min {min(xs):.4f} mean {statistics.fmean(xs):.4f} max {max(xs):.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", choices=("retinaface", "yunet", "both"), default="both")
    ap.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    ap.add_argument("--models-dir", type=Path, default=REPO / "models")
    ap.add_argument("--match", type=float, default=DEFAULT_MATCH)
    ap.add_argument("--no-video", action="store_true", help="skip the Hamilton clip")
    args = ap.parse_args()
    root = args.eval_dir / "faces"
    manifest = load_manifest()
    embedder = OnnxModel(manifest.get("sface"), args.models_dir)
    kinds = ["retinaface", "yunet"] if args.detector == "both" else [args.detector]
    for kind in kinds:
        pipe = FacePipeline(OnnxModel(manifest.get(kind), args.models_dir), kind, embedder)
        print(f"== detector {kind}, embedder sface, match threshold {args.match}")
        same, diff = calibration(labelled_faces(pipe, root))
        gap_lo, gap_hi = max(diff), min(same)
        print(f"  same person:      {stats(same)}")
        print(f"  different people: {stats(diff)}")
        print(f"  same-person pairs at or under MaixPy's 0.85: {sum(x <= 0.85 for x in same)}")
        print(
            f"  gap {gap_lo:.4f}..{gap_hi:.4f} → middle {(gap_lo + gap_hi) / 2:.4f}; margins at "
            f"{args.match}: {args.match - gap_lo:+.4f} over the closest stranger, "
            f"{gap_hi - args.match:+.4f} under the weakest genuine pair"
        )
        bank, labels = enrol_train(pipe, root)
        print(f"  enrolled {len(labels)} vectors of {len(set(labels))} people")
        knn_test(pipe, root, bank, labels, args.match)
        stranger(pipe, root, bank, labels, args.match)
        recall(pipe, root)
        if not args.no_video:
            video(pipe, root, args.match)
        timings(pipe, root)


if __name__ == "__main__":
    main()
