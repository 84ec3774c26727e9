"""COCO evaluation of the segmentation pipeline on ../shared/eval/coco128, plus per-frame timings.

Boxes come from ``Segmenter.segment``; masks are rasterised **from the published polygons**
(pycocotools ``frPyObjects`` + ``merge``), because polygons are what the agent publishes.
``--masks raw`` scores the binary masks instead (diagnostic: what the polygons cost).

    .venv/bin/python tools/eval_segment.py [--eval-dir DIR] [--models-dir DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.models.manifest import load_manifest  # noqa: E402
from agent.vision.runtime import OnnxModel  # noqa: E402
from agent.vision.segment import Segmenter  # noqa: E402

# The model's 80 class indices → COCO category ids (1..90), standard order.
COCO80_TO_91 = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
]  # fmt: skip

SCORE_TH = 0.001
IOU_TH = 0.7
MAX_DET = 100


def polygons_rle(polys: list[list[int]], h: int, w: int) -> dict[str, Any]:
    """Merged RLE of a list of polygons (each >= 3 points); empty RLE when there are none."""
    valid = [p for p in polys if len(p) >= 6]
    if not valid:
        return mask_utils.encode(np.zeros((h, w), np.uint8, order="F"))  # type: ignore[no-any-return]
    return mask_utils.merge(mask_utils.frPyObjects(valid, h, w))  # type: ignore[no-any-return]


def detections(
    seg: Segmenter, coco: COCO, images_dir: Path, masks: str, limit: int | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    box_res: list[dict[str, Any]] = []
    seg_res: list[dict[str, Any]] = []
    img_ids = sorted(coco.getImgIds())[:limit]
    for img_id in img_ids:
        info = coco.loadImgs(img_id)[0]
        frame = cv2.imread(str(images_dir / info["file_name"]), cv2.IMREAD_COLOR)
        if frame is None:
            raise SystemExit(f"cannot read {images_dir / info['file_name']}")
        h, w = frame.shape[:2]
        for obj, bm in seg.segment_with_masks(
            frame, score_th=SCORE_TH, iou_th=IOU_TH, max_det=MAX_DET, polygons=masks == "polygons"
        ):
            cat = COCO80_TO_91[obj["class_id"]]
            base = {"image_id": img_id, "category_id": cat, "score": obj["score"]}
            box_res.append({**base, "bbox": obj["box"]})
            if masks == "polygons":
                rle = polygons_rle(obj["polygons"], h, w)
            else:
                rle = mask_utils.encode(np.asfortranarray(bm.full(h, w)))
            seg_res.append({**base, "segmentation": rle})
    return box_res, seg_res, img_ids


def evaluate(coco: COCO, res: list[dict[str, Any]], iou_type: str, img_ids: list[int]) -> list[float]:
    if not res:
        return [0.0] * 12
    with contextlib.redirect_stdout(io.StringIO()):
        dt = coco.loadRes(res)
        ev = COCOeval(coco, dt, iou_type)
        ev.params.imgIds = img_ids
        ev.params.maxDets = [1, 10, MAX_DET]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def timings(seg: Segmenter, frame: np.ndarray, runs: int) -> dict[str, float]:
    """Median ms per frame: model only (pre-made input) vs end-to-end ``segment()``."""
    blob, _ = seg.preprocess(frame)
    for _ in range(5):
        seg.model(blob)
        seg.segment(frame)
    model_ms, e2e_ms, pre_ms = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        seg.model(blob)
        t1 = time.perf_counter()
        seg.segment(frame)
        t2 = time.perf_counter()
        seg.preprocess(frame)
        t3 = time.perf_counter()
        model_ms.append((t1 - t0) * 1e3)
        e2e_ms.append((t2 - t1) * 1e3)
        pre_ms.append((t3 - t2) * 1e3)
    m, e = statistics.median(model_ms), statistics.median(e2e_ms)
    return {"model_ms": m, "end_to_end_ms": e, "preprocess_ms": statistics.median(pre_ms),
            "ratio": e / m}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    eval_dir = os.environ.get("MAIX_AGENT_EVAL_DIR", str(REPO.parent / "shared" / "eval"))
    models_dir = os.environ.get("MAIX_AGENT_MODELS__DIR", str(REPO / "models"))
    ap.add_argument("--eval-dir", type=Path, default=Path(eval_dir))
    ap.add_argument("--models-dir", type=Path, default=Path(models_dir))
    ap.add_argument("--model", default="yolov8n_seg")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--masks", choices=["polygons", "raw"], default="polygons")
    ap.add_argument("--epsilon", type=float, default=None, help="polygon simplification, px")
    ap.add_argument("--runs", type=int, default=50, help="timing runs at 640x480 (0: skip)")
    ap.add_argument("--json", action="store_true", help="print one JSON line of results")
    args = ap.parse_args(argv)

    root = args.eval_dir / "coco128"
    model = OnnxModel(load_manifest().get(args.model), args.models_dir, threads=args.threads)
    seg = Segmenter(model) if args.epsilon is None else Segmenter(model, epsilon=args.epsilon)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(root / "instances.json"))
    t0 = time.perf_counter()
    box_res, seg_res, img_ids = detections(seg, coco, root / "images", args.masks, args.limit)
    elapsed = time.perf_counter() - t0
    box = evaluate(coco, box_res, "bbox", img_ids)
    segm = evaluate(coco, seg_res, "segm", img_ids)
    out: dict[str, Any] = {
        "images": len(img_ids),
        "detections": len(box_res),
        "masks_from": args.masks,
        "box_map50": round(box[1], 4),
        "box_map50_95": round(box[0], 4),
        "mask_map50": round(segm[1], 4),
        "mask_map50_95": round(segm[0], 4),
        "eval_seconds": round(elapsed, 2),
    }
    if args.runs > 0:
        src = cv2.imread(str(args.eval_dir / "images" / "bus.jpg"), cv2.IMREAD_COLOR)
        if src is None:
            raise SystemExit(f"cannot read {args.eval_dir / 'images' / 'bus.jpg'}")
        frame = cv2.resize(src, (640, 480), interpolation=cv2.INTER_AREA)
        out["timing_640x480"] = {k: round(v, 3) for k, v in timings(seg, frame, args.runs).items()}
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>16}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
