"""Realistic inputs for timing a model on an engine, and the check that an engine's *decoded*
results match the reference engine's (onnxruntime) on real images.

One probe per model role, built from the evaluation images (``../shared/eval``):

- face_detector: 4 photos fitted into 640x480; every face (score >= 0.6) matched both ways,
  box IoU >= 0.98, landmarks within 1 px.
- face_embedder: the faces found there, aligned to 112; embedding cosine >= 0.999.
- features: 4 photos, centre crop 224; feature cosine >= 0.999.
- segmenter: 3 coco128 images + bus.jpg; every object (score >= 0.45) matched both ways with the
  same class and box IoU >= 0.97, mask IoU >= 0.95.
- tracker_backbone / tracker_head: VOT "bag", 40 frames, tracked with the reference partner
  network; track box IoU >= 0.95 on every frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from agent.errors import ModelError
from agent.models.manifest import Manifest, ModelSpec

if TYPE_CHECKING:
    from agent.vision.runtime import Model

TRACK_FRAMES = 40
FACE_IMAGES = ("faces/obama.jpg", "faces/two_people.jpg", "faces/biden.jpg", "faces/alex-lacamoire.png")
FEATURE_IMAGES = ("images/astronaut.png", "images/bus.jpg", "images/chelsea.png", "faces/obama2.jpg")
SEGMENT_IMAGES = 3  # the first coco128 images, plus images/bus.jpg
TOLERANCE = {
    "face_detector": "faces matched both ways, box IoU >= 0.98, landmarks within 1 px",
    "face_embedder": "embedding cosine >= 0.999",
    "features": "feature cosine >= 0.999",
    "segmenter": "objects matched both ways (class, box IoU >= 0.97), mask IoU >= 0.95",
    "tracker_backbone": "track box IoU >= 0.95 on each of 40 frames",
    "tracker_head": "track box IoU >= 0.95 on each of 40 frames",
}

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Check:
    ok: bool
    figure: float  # the worst value seen (IoU or cosine)
    tolerance: str

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "figure": round(self.figure, 6), "tolerance": self.tolerance}


@dataclass
class Probe:
    """``feeds``: realistic inputs, one dict a run; ``check(candidate, reference)``."""

    feeds: list[Feeds]
    check: Callable[[Model, Model], Check]


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ModelError(f"tuning needs the evaluation images: cannot read {path}")
    return img


def fit_640x480(img: np.ndarray) -> np.ndarray:
    """An image scaled to fit 640x480 and centred on a grey canvas (a camera frame)."""
    h, w = img.shape[:2]
    s = min(640 / w, 480 / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 114, np.uint8)
    x0, y0 = (640 - nw) // 2, (480 - nh) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = small
    return canvas


def _iou(a: np.ndarray | tuple[float, ...], b: np.ndarray | tuple[float, ...]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _frames(eval_dir: Path, names: tuple[str, ...]) -> list[np.ndarray]:
    return [fit_640x480(_read(eval_dir / n)) for n in names]


def _detector_probe(spec: ModelSpec, eval_dir: Path, reference: Model) -> Probe:
    from agent.vision.face_detect import FaceDetector, detector_kind

    frames = _frames(eval_dir, FACE_IMAGES)
    kind = detector_kind(spec.name)

    def check(cand: Model, ref: Model) -> Check:
        worst = 1.0
        for frame in frames:
            a = FaceDetector(ref, kind).detect(frame, 0.5)
            b = FaceDetector(cand, kind).detect(frame, 0.5)
            for xs, ys in ((a, b), (b, a)):
                for f in (f for f in xs if f.score >= 0.6):
                    best = max(ys, key=lambda g: _iou(f.box, g.box), default=None)
                    if best is None:
                        return Check(False, 0.0, TOLERANCE["face_detector"])
                    v = _iou(f.box, best.box)
                    if float(np.abs(f.points - best.points).max()) > 1.0:
                        v = min(v, 0.0)
                    worst = min(worst, v)
        return Check(worst >= 0.98, worst, TOLERANCE["face_detector"])

    blobs = [FaceDetector(reference, kind).preprocess(f)[0] for f in frames]
    return Probe([{spec.input.name: b} for b in blobs], check)


def _embedder_probe(spec: ModelSpec, manifest: Manifest, models_dir: Path, eval_dir: Path) -> Probe:
    from agent.vision.face_align import align_blob
    from agent.vision.face_detect import FaceDetector, detector_kind
    from agent.vision.runtime import OnnxModel

    det_spec = manifest.models.get("yunet") or manifest.by_role("face_detector")[0]
    detector = FaceDetector(OnnxModel(det_spec, models_dir, 1), detector_kind(det_spec.name))
    size = (spec.input.size or (112, 112))[0]
    blobs = [
        align_blob(
            frame, face.points, size, rgb=spec.input.colour == "rgb", mean=spec.input.mean, scale=spec.input.scale
        )
        for frame in _frames(eval_dir, FACE_IMAGES)
        for face in detector.detect(frame)
    ]
    if not blobs:
        raise ModelError("tuning found no face in the evaluation photos")
    feeds = [{spec.input.name: b} for b in blobs]
    return Probe(feeds, _cosine_check(feeds, TOLERANCE["face_embedder"]))


def _cosine_check(feeds: list[Feeds], tolerance: str) -> Callable[[Model, Model], Check]:
    def check(cand: Model, ref: Model) -> Check:
        worst = min(_cos(cand.run(f)[0], ref.run(f)[0]) for f in feeds)
        return Check(worst >= 0.999, worst, tolerance)

    return check


def _features_probe(spec: ModelSpec, eval_dir: Path) -> Probe:
    from agent.vision.features import preprocess

    feeds = [{spec.input.name: preprocess(_read(eval_dir / n), spec.input)[None]} for n in FEATURE_IMAGES]
    return Probe(feeds, _cosine_check(feeds, TOLERANCE["features"]))


def _segmenter_probe(spec: ModelSpec, eval_dir: Path) -> Probe:
    from agent.vision.segment import Segmenter
    from agent.vision.yolo_decode import letterbox

    paths = [*sorted((eval_dir / "coco128" / "images").glob("*.jpg"))[:SEGMENT_IMAGES], eval_dir / "images/bus.jpg"]
    frames = [_read(p) for p in paths]
    i = spec.input
    size = i.size or (320, 320)
    feeds = [
        {i.name: letterbox(f, size, int(i.pad if i.pad is not None else 114), i.scale, i.colour == "rgb")[0]}
        for f in frames
    ]

    def check(cand: Model, ref: Model) -> Check:
        worst = 1.0
        for frame in frames:
            h, w = frame.shape[:2]
            a = Segmenter(ref).segment_with_masks(frame, score_th=0.3, polygons=False)
            b = Segmenter(cand).segment_with_masks(frame, score_th=0.3, polygons=False)
            for xs, ys in ((a, b), (b, a)):
                for obj, bm in (o for o in xs if o[0]["score"] >= 0.45):
                    same = [o for o in ys if o[0]["class_id"] == obj["class_id"]]
                    best = max(same, key=lambda o: _iou(obj["box"], o[0]["box"]), default=None)
                    if best is None or _iou(obj["box"], best[0]["box"]) < 0.97:
                        return Check(
                            False, 0.0 if best is None else _iou(obj["box"], best[0]["box"]), TOLERANCE["segmenter"]
                        )
                    m1, m2 = bm.full(h, w).astype(bool), best[1].full(h, w).astype(bool)
                    union = np.count_nonzero(m1 | m2)
                    worst = min(worst, np.count_nonzero(m1 & m2) / union if union else 1.0)
        return Check(worst >= 0.95, worst, TOLERANCE["segmenter"])

    return Probe(feeds, check)


def _tracker_probe(spec: ModelSpec, manifest: Manifest, models_dir: Path, eval_dir: Path) -> Probe:
    from agent.vision.runtime import OnnxModel
    from agent.vision.track import NanoTracker, crop_square

    base = spec.name.rsplit("_", 1)[0]
    backbone = OnnxModel(manifest.get(f"{base}_backbone"), models_dir, 1)
    head = OnnxModel(manifest.get(f"{base}_head"), models_dir, 1)
    seq = eval_dir / "tracking" / "vot15_bag"
    paths = sorted((seq / "imgs").glob("*.jpg"))[:TRACK_FRAMES]
    frames = [_read(p) for p in paths]
    v = [float(x) for x in (seq / "groundtruth.txt").read_text().splitlines()[0].replace("\t", ",").split(",")]
    xs, ys = v[0::2], v[1::2]
    box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    probe = NanoTracker(backbone, head)
    probe.init(frames[0], box)
    rgb = backbone.spec.input.colour == "rgb"
    crops = [crop_square(f, *probe.center, 2 * probe._template_side(), 255, probe._pad, rgb=rgb) for f in frames[1:6]]
    bb_in, hd_t, hd_x = backbone.spec.input.name, head.spec.input.name, next(iter(head.spec.extra_inputs))
    if spec.role == "tracker_backbone":
        feeds = [{bb_in: c} for c in crops]
    else:
        assert probe._template is not None
        feeds = [{hd_t: probe._template, hd_x: backbone.run({bb_in: c})[0]} for c in crops]

    def run(bb: Model, hd: Model) -> list[tuple[float, float, float, float]]:
        t = NanoTracker(bb, hd)
        t.init(frames[0], box)
        return [t.track(f).box for f in frames[1:]]

    def check(cand: Model, ref: Model) -> Check:
        pair = (cand, head) if spec.role == "tracker_backbone" else (backbone, cand)
        worst = min(_iou(a, b) for a, b in zip(run(backbone, head), run(*pair), strict=True))
        return Check(worst >= 0.95, worst, TOLERANCE[spec.role])

    return Probe(feeds, check)


def build_probe(spec: ModelSpec, manifest: Manifest, models_dir: Path, eval_dir: Path, reference: Model) -> Probe:
    """The probe of ``spec``'s role, from the images in ``eval_dir`` (``reference``: ``spec`` on
    the reference engine)."""
    if not eval_dir.is_dir():
        raise ModelError(f"tuning needs the evaluation images at {eval_dir} (models.tune_images)")
    if spec.role == "face_detector":
        return _detector_probe(spec, eval_dir, reference)
    if spec.role == "face_embedder":
        return _embedder_probe(spec, manifest, models_dir, eval_dir)
    if spec.role == "features":
        return _features_probe(spec, eval_dir)
    if spec.role == "segmenter":
        return _segmenter_probe(spec, eval_dir)
    if spec.role in ("tracker_backbone", "tracker_head"):
        return _tracker_probe(spec, manifest, models_dir, eval_dir)
    raise ModelError(f"no tuning probe for role {spec.role!r} ({spec.name})")
