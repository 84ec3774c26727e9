"""Evaluate the NanoTrack tracker on VOT2015 "bag" (../shared/eval/tracking/vot15_bag).

Initialises on frame 1 with the ground-truth box and never re-initialises. Mean IoU and the share
of frames with IoU > 0.5 are over every frame after the init frame (frames 2..N). Times: "track" is
the whole ``track()`` call (crop + networks + decode), "nets" the onnxruntime calls alone.
``cv2.TrackerNano`` (OpenCV's NanoTrack, with the same v2 files) runs on the same frames as a peer.

Then the recovery path: frames 60-80 (1-based, as the file names) are replaced by grey frames
(``grey``), by grey frames with every later frame shifted 120 px left so the target comes back away
from where it was lost (``grey+shift``, needs the wide search), or by the frame with the target
painted out (``erased``, the case where NanoTrack's raw score stays high). The published state
sequence around the gap, and IoU after it, are printed.

``--pans N`` adds a second data set: N synthetic camera pans/zooms (60 frames, 480x360) over COCO
objects of ../shared/eval/coco128 (40-px-or-larger boxes of at most a quarter of the image; seeded),
the ground truth moving with the camera; mean IoU over every sequence's frames 2..60, the agent's
tracker and cv2.TrackerNano alike. (One video is one video: tracker changes are judged on both.)

    .venv/bin/python tools/eval_track.py [--threads 1] [--no-verify] [--versions v2 v3] [--pans 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.models.manifest import load_manifest  # noqa: E402
from agent.vision.faces import box_iou  # noqa: E402
from agent.vision.runtime import OnnxModel  # noqa: E402
from agent.vision.track import NanoTracker, TrackParams, TrackResult  # noqa: E402

Box = tuple[float, float, float, float]
GAP = (60, 80)  # 1-based frame numbers replaced in the recovery runs
SHIFT = 120  # px the frames after the gap move left in the grey+shift run


def load_sequence(folder: Path) -> tuple[list[np.ndarray], list[Box]]:
    """Frames (imgs/*.jpg in order) and axis-aligned ground-truth boxes (x, y, w, h)."""
    paths = sorted((folder / "imgs").glob("*.jpg"))
    frames = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {p}")
        frames.append(img)
    boxes: list[Box] = []
    for line in (folder / "groundtruth.txt").read_text().splitlines():
        if not line.strip():
            continue
        v = [float(a) for a in line.replace("\t", ",").split(",")]
        xs, ys = v[0::2], v[1::2]
        boxes.append((min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))
    if len(boxes) != len(frames):
        raise SystemExit(f"{len(frames)} frames but {len(boxes)} ground-truth lines")
    return frames, boxes


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    return box_iou((a[0], a[1], a[2], a[3]), (b[0], b[1], b[2], b[3]))


@dataclass
class Run:
    ious: list[float]
    scores: list[float]
    results: list[TrackResult]
    track_ms: float
    net_ms: float


def run_tracker(tracker: NanoTracker, frames: list[np.ndarray], gt: list[Box]) -> Run:
    tracker.init(frames[0], gt[0])
    tracker.net_seconds = 0.0
    ious: list[float] = []
    scores: list[float] = []
    results: list[TrackResult] = []
    spent = 0.0
    for frame, box in zip(frames[1:], gt[1:], strict=True):
        t0 = time.perf_counter()
        r = tracker.track(frame)
        spent += time.perf_counter() - t0
        results.append(r)
        ious.append(iou(r.box, box))
        scores.append(r.score)
    n = len(ious)
    return Run(ious, scores, results, spent / n * 1000, tracker.net_seconds / n * 1000)


def run_opencv(frames: list[np.ndarray], gt: list[Box], backbone: Path, head: Path) -> tuple[list[float], float]:
    params = cv2.TrackerNano_Params()  # type: ignore[attr-defined]
    params.backbone = str(backbone)
    params.neckhead = str(head)
    tracker = cv2.TrackerNano_create(params)  # type: ignore[attr-defined]
    tracker.init(frames[0], tuple(round(v) for v in gt[0]))
    ious: list[float] = []
    spent = 0.0
    for frame, box in zip(frames[1:], gt[1:], strict=True):
        t0 = time.perf_counter()
        _, rect = tracker.update(frame)
        spent += time.perf_counter() - t0
        ious.append(iou(tuple(float(v) for v in rect), box))
    return ious, spent / len(ious) * 1000


def synthetic_pans(
    coco: Path, count: int, frames: int = 60, seed: int = 0, size: tuple[int, int] = (480, 360)
) -> list[tuple[list[np.ndarray], list[Box]]]:
    """``count`` camera paths over COCO objects: the camera follows an object loosely (sinusoidal
    pan of 20-60 px) and zooms ±10-30 %; frames are ``cv2.warpAffine`` of the photo (reflected
    border), the ground truth the object's box under the same map."""
    import json

    ww, hh = size
    data = json.loads((coco / "instances.json").read_text())
    images = {i["id"]: i for i in data["images"]}
    anns = [
        a for a in data["annotations"]
        if not a["iscrowd"] and min(a["bbox"][2:]) >= 40
        and a["bbox"][2] * a["bbox"][3] <= 0.25 * images[a["image_id"]]["width"] * images[a["image_id"]]["height"]
    ]  # fmt: skip
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.choice(len(anns), min(count, len(anns)), replace=False):
        a = anns[int(k)]
        photo = cv2.imread(str(coco / "images" / images[a["image_id"]]["file_name"]), cv2.IMREAD_COLOR)
        if photo is None:
            raise SystemExit(f"cannot read {images[a['image_id']]['file_name']}")
        x, y, w, h = (float(v) for v in a["bbox"])
        cx, cy = x + w / 2, y + h / 2
        phase = rng.uniform(0, 2 * np.pi, 3)
        amp = rng.uniform(20, 60, 2)
        zoom = rng.uniform(0.1, 0.3)
        seq: list[np.ndarray] = []
        boxes: list[Box] = []
        for t in range(frames):
            f = 2 * np.pi * t / frames
            s = 1.0 + zoom * np.sin(f + phase[2])
            ox, oy = cx + amp[0] * np.sin(1.3 * f + phase[0]), cy + amp[1] * np.sin(f + phase[1])
            m = np.array([[s, 0.0, ww / 2 - s * ox], [0.0, s, hh / 2 - s * oy]])
            seq.append(cv2.warpAffine(photo, m, (ww, hh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
            boxes.append((s * x + m[0, 2], s * y + m[1, 2], s * w, s * h))
        out.append((seq, boxes))
    return out


def pct(values: Sequence[float], qs: Sequence[float]) -> str:
    arr = np.asarray(values, dtype=np.float64)
    return " ".join(f"p{q:g}={np.percentile(arr, q):.3f}" for q in qs)


def scenario_frames(frames: list[np.ndarray], gt: list[Box], kind: str) -> tuple[list[np.ndarray], list[Box | None]]:
    lo, hi = GAP[0] - 1, GAP[1] - 1  # 0-based indices
    grey = np.full_like(frames[0], 128)
    out: list[np.ndarray] = []
    boxes: list[Box | None] = []
    shift = np.array([[1, 0, -SHIFT], [0, 1, 0]], dtype=np.float32)
    for i, (f, b) in enumerate(zip(frames, gt, strict=True)):
        if lo <= i <= hi:
            if kind == "erased":
                x, y, w, h = (int(v) for v in b)
                mask = np.zeros(f.shape[:2], np.uint8)
                mask[max(0, y - 8) : y + h + 8, max(0, x - 8) : x + w + 8] = 255
                out.append(cv2.inpaint(f, mask, 5, cv2.INPAINT_TELEA))
            else:
                out.append(grey)
            boxes.append(None)
        elif kind == "grey+shift" and i > hi:
            out.append(cv2.warpAffine(f, shift, (f.shape[1], f.shape[0]), borderMode=cv2.BORDER_REFLECT))
            boxes.append((b[0] - SHIFT, b[1], b[2], b[3]))
        else:
            out.append(f)
            boxes.append(b)
    return out, boxes


def run_recovery(tracker: NanoTracker, frames: list[np.ndarray], gt: list[Box], kind: str) -> str:
    seq, boxes = scenario_frames(frames, gt, kind)
    tracker.init(seq[0], gt[0])
    states: list[str] = []
    gap_scores: list[float] = []
    after: list[float] = []
    for i in range(1, len(seq)):
        r = tracker.track(seq[i])
        states.append(r.state)
        b = boxes[i]
        if b is None:
            gap_scores.append(r.score)
        elif i > GAP[1] - 1:
            after.append(iou(r.box, b))

    # states[k] is frame number k + 2 (1-based)
    def first(pred: Callable[[int], bool]) -> str:
        for k, s in enumerate(states):
            if pred(k) and s:
                return str(k + 2)
        return "never"

    gap0 = GAP[0]
    first_lost = first(lambda k: k + 2 >= gap0 and states[k] == "lost")
    searches = [k + 2 for k, s in enumerate(states) if s == "searching"]
    resumed = first(lambda k: k + 2 > GAP[1] and states[k] == "tracking")
    hits_in_gap = sum(1 for k, s in enumerate(states) if GAP[0] <= k + 2 <= GAP[1] and s == "tracking")
    code = "".join(s[0] for s in states[GAP[0] - 6 : GAP[1] + 8])
    return (
        f"first lost {first_lost}, searching on {searches}, 'tracking' frames in the gap (incl. coasting) "
        f"{hits_in_gap}, resumed at {resumed}, IoU after gap {np.mean(after):.3f}; "
        f"gap score max {max(gap_scores):.3f}\n"
        f"      states {GAP[0] - 4}..{GAP[1] + 9}: {code}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    eval_dir = Path(os.environ.get("MAIX_AGENT_EVAL_DIR", REPO.parent / "shared" / "eval"))
    ap.add_argument("--data", type=Path, default=eval_dir / "tracking" / "vot15_bag")
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("MAIX_AGENT_MODELS__DIR", REPO / "models")))
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--versions", nargs="+", default=["v2", "v3"])
    ap.add_argument("--no-verify", action="store_true", help="turn the template check off")
    ap.add_argument("--no-recovery", action="store_true")
    ap.add_argument("--pans", type=int, default=0, help="also N synthetic COCO pans (see above)")
    args = ap.parse_args(argv)
    pans = synthetic_pans(eval_dir / "coco128", args.pans) if args.pans > 0 else []

    frames, gt = load_sequence(args.data)
    manifest = load_manifest()
    n = len(frames) - 1
    print(
        f"{args.data.name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}; "
        f"init on frame 1, scored on frames 2..{len(frames)} ({n}); threads={args.threads}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    for version in args.versions:
        bb_spec = manifest.get(f"nanotrack_{version}_backbone")
        hd_spec = manifest.get(f"nanotrack_{version}_head")
        backbone = OnnxModel(bb_spec, args.models, threads=args.threads)
        head = OnnxModel(hd_spec, args.models, threads=args.threads)
        params = TrackParams(verify=not args.no_verify)
        tracker = NanoTracker(backbone, head, params)
        run = run_tracker(tracker, frames, gt)
        ious = np.asarray(run.ious)
        states = {s: sum(r.state == s for r in run.results) for s in ("tracking", "lost", "searching")}
        print(
            f"\n{version}: mean IoU {ious.mean():.4f} (with init frame {(ious.sum() + 1) / (n + 1):.4f}), "
            f"IoU>0.5 {100 * (ious > 0.5).mean():.1f}%, track {run.track_ms:.2f} ms/frame, "
            f"nets {run.net_ms:.2f} ms/frame; threshold {tracker.threshold}, "
            f"verify {params.verify} (cos >= {tracker.verify_min}); states {states}"
        )
        print(f"  published score on the correct track: {pct(run.scores, (0, 1, 5, 50))}")
        raw = NanoTracker(backbone, head, TrackParams(score=0.0, verify=False))
        raw_run = run_tracker(raw, frames, gt)
        print(
            f"  raw max score (threshold 0, no verify): {pct(raw_run.scores, (0, 1, 5, 50))}, "
            f"mean IoU {np.mean(raw_run.ious):.4f}"
        )
        if not args.no_recovery:
            for kind in ("grey", "grey+shift", "erased"):
                t = NanoTracker(backbone, head, params)
                print(f"  recovery {kind} frames {GAP[0]}-{GAP[1]}: {run_recovery(t, frames, gt, kind)}")
        if pans:
            pan_iou = np.mean([np.mean(run_tracker(NanoTracker(backbone, head, params), f, g).ious) for f, g in pans])
            print(f"  {len(pans)} synthetic COCO pans: mean IoU {pan_iou:.4f}")
        if version == "v2":
            cv_ious, cv_ms = run_opencv(frames, gt, backbone.path, head.path)
            a = np.asarray(cv_ious)
            print(
                f"  peer cv2.TrackerNano (v2 files): mean IoU {a.mean():.4f}, "
                f"IoU>0.5 {100 * (a > 0.5).mean():.1f}%, {cv_ms:.2f} ms/frame"
            )
            if pans:
                cv_pans = np.mean([np.mean(run_opencv(f, g, backbone.path, head.path)[0]) for f, g in pans])
                print(f"  peer cv2.TrackerNano on the {len(pans)} synthetic COCO pans: mean IoU {cv_pans:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
