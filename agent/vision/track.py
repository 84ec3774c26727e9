"""Single-object tracking with NanoTrack (backbone + head on onnxruntime), MaixPy semantics.

What matches MaixPy's ``maix.nn.NanoTrack`` (reference A4):

* ``init(frame, box)`` crops a square template of side ``round(sqrt((w+p)(h+p)))`` with
  ``p = context·(w+h)`` around the box centre, pads with the frame's per-channel mean colour (MaixPy
  uses ``(max−min)/2``, a quirk we do not copy), resizes it to 127 and runs the backbone once.
  The template features are never updated.
* ``track(frame)`` crops a search square ``255/127`` times the template side around the last good
  centre, runs backbone + head, softmaxes the two class channels (channel 1 = target), decodes
  ``point ± ltrb`` on a stride-16 grid centred on the crop, applies the scale/ratio change penalty
  and the Hanning-window blend, and smooths w/h with ``lr = penalty·score·lr``.
* The internal state (centre, size) moves **only when the score is at least the threshold**; the
  predicted box is returned either way.

Beyond MaixPy (its NanoTrack has no recovery; its MixFormerV2 has a full-frame search, reference A5):

* Consecutive misses are counted. After ``lost_after`` misses the published state is ``lost``;
  from ``search_after`` misses on, every ``search_every`` missed frames a *wide search* scans the
  whole frame with a set of overlapping search crops (tiles) and the state is ``searching`` on
  those frames. Tiles keep the normal search scale (the target appears at the size the networks
  were trained for) unless covering the frame would need more than ``max_tiles`` crops, in which
  case the tiles grow (the target looks smaller in them) and the size penalty is computed against
  the last size *at the tile's scale*, so a correct re-detection is not penalised for the zoom.
  A candidate with score ≥ threshold resumes tracking there.
* The returned score is the raw target probability at the chosen point (the quantity compared
  with the threshold), not MaixPy's window-blended value, so it stays comparable across frames.
* Appearance check (``verify``, on by default): the raw NanoTrack score is known to stay high after
  the target has left (SiamTrackers #102/#174; measured here: with the bag painted out of the bag
  video the raw score is still >= 0.9 on 80 % of frames). Each hit is checked against the initial
  template: the backbone is fully convolutional with stride 16 and the search crop has the
  template's scale, so the search features under the hit (a bilinear 4x4 window of the 16x16 map,
  the size of the template's central half, i.e. the target without context) are what the backbone
  would give on a template re-cropped there. Their cosine with the initial template's central half
  costs microseconds and no extra network run. (A wide-search tile at a larger scale is re-cropped
  at the hit instead: one 127x127 backbone run.) A hit whose cosine is below ``verify_min`` is a
  miss, and its published score drops to ``threshold·cos/verify_min``; a verified hit keeps its raw
  score.
* Calibration (tools/eval_track.py on vot15_bag, plus synthetic pans/zooms of 40 COCO objects): on
  a correct track the raw max score is >= 0.94 for v2 (1st percentile 0.989) and >= 0.999 for v3;
  grey frames give ~0.71–0.80. So MaixPy's 0.9 never freezes a correct track and stays the default
  for both versions. The feature cosine on a correct track is >= 0.45 (v2) / >= 0.65 (v3) on the
  bag (>= 0.72 / 0.72 on the COCO pans); with the bag painted out it reaches at most 0.34 (v2) /
  0.34 (v3): ``verify_min`` is 0.40 for v2 and 0.50 for v3, nearer the painted-out side because a
  wrongly rejected hit costs a real track.
* Misses below ``lost_after`` still publish ``tracking`` (a brief dropout coasts, the state does
  not move); ``lost_after=1`` gives MaixPy's "lost on the first miss".

All crops go through :func:`crop_square` (one fused fastpath crop-resize to the network input).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

import fastpath
from agent.vision.runtime import Model

TrackState = Literal["tracking", "lost", "searching"]
Box = tuple[float, float, float, float]

# Calibrated defaults per model-name prefix (see "Calibration" above and tools/eval_track.py).
DEFAULT_SCORE = 0.9  # MaixPy's default, used for any model without a calibrated value
CALIBRATED_SCORE: dict[str, float] = {"nanotrack_v2": 0.9, "nanotrack_v3": 0.9}
DEFAULT_VERIFY = 0.4
CALIBRATED_VERIFY: dict[str, float] = {"nanotrack_v2": 0.4, "nanotrack_v3": 0.5}


@dataclass(frozen=True)
class TrackParams:
    """Every constant of the tracker. ``score=None`` picks the calibrated default for the model."""

    context: float = 0.5  # context amount around the box for the template crop
    penalty_k: float = 0.15  # scale/ratio change penalty
    window_influence: float = 0.49  # Hanning window blend
    lr: float = 0.385  # size smoothing
    exemplar_size: int = 127  # template crop side fed to the backbone
    instance_size: int = 255  # search crop side fed to the backbone
    stride: int = 16  # head output stride in search-crop pixels
    min_size: float = 10.0  # clip: w, h >= min_size
    score: float | None = None  # state updates only when score >= this threshold
    lost_after: int = 5  # consecutive misses before the state is "lost"
    search_after: int = 10  # consecutive misses before the first wide search
    search_every: int = 5  # then a wide search every this many missed frames
    max_tiles: int = 9  # at most this many search crops in one wide search
    tile_overlap: float = 0.25  # overlap between neighbouring tiles (fraction of the side)
    verify: bool = True  # template-similarity check of each hit (on the search features)
    verify_min: float | None = None  # cosine below which a hit is rejected; None = calibrated

    def __post_init__(self) -> None:
        if self.score is not None and not 0.0 <= self.score <= 1.5:
            raise ValueError(f"score threshold must be in [0, 1.5], got {self.score}")
        if self.lost_after < 1 or self.search_after < 1 or self.search_every < 1:
            raise ValueError("lost_after, search_after and search_every must be >= 1")
        if self.verify_min is not None and not 0.0 < self.verify_min <= 1.0:
            raise ValueError(f"verify_min must be in (0, 1], got {self.verify_min}")
        if self.max_tiles < 1:
            raise ValueError("max_tiles must be >= 1")
        if not 0.0 <= self.tile_overlap < 1.0:
            raise ValueError("tile_overlap must be in [0, 1)")


@dataclass(frozen=True)
class TrackResult:
    box: Box  # x, y, w, h in frame pixels (the prediction, whatever the state)
    score: float  # target probability of the chosen point, 0..1
    state: TrackState


@dataclass
class _Candidate:
    cx: float
    cy: float
    w: float
    h: float
    score: float  # raw target probability at the chosen point
    feat: np.ndarray | None = None  # the search crop's backbone features [1, C, N, N]
    crop_centre: tuple[float, float] = (0.0, 0.0)  # frame pixels
    crop_scale: float = 1.0  # search-crop pixels per frame pixel


def crop_square(
    frame: np.ndarray, cx: float, cy: float, side: float, out: int, pad: tuple[float, ...], *, rgb: bool = False
) -> np.ndarray:
    """Square of ``side`` frame pixels centred on (cx, cy), padded with ``pad``, resized to ``out``.

    pysot's ``get_subwindow`` made exact: one fused fastpath pass straight to the network's float32
    [1, 3, out, out] tensor (channels swapped to RGB when ``rgb``, the manifest's contract), the
    window's corner and side not rounded to whole pixels and no 8-bit intermediate. pysot's integer
    window sits up to a pixel off the target's centre (half a pixel on average) and its side is
    rounded; the exact window moved mean IoU (BGR input) on the VOT bag video from 0.795 to 0.800
    (v2) and 0.811 to 0.813 (v3), and on 40 synthetic COCO pans from 0.842 to 0.844 (v2; v3
    unchanged) — tools/eval_track.py.
    """
    return fastpath.crop_resize(frame, cx, cy, side, side, out, out, border=pad, swap_rb=rgb)


class NanoTracker:
    """NanoTrack v2/v3 single-object tracker with MaixPy's update rule and lost-target recovery."""

    def __init__(self, backbone: Model, head: Model, params: TrackParams | None = None) -> None:
        self.backbone = backbone
        self.head = head
        p = params or TrackParams()
        if p.score is None:
            p = replace(p, score=default_threshold(head.spec.name))
        if p.verify_min is None:
            p = replace(p, verify_min=default_verify_min(head.spec.name))
        self.params = p
        self.threshold: float = float(p.score or 0.0)
        self.verify_min: float = float(p.verify_min or 0.0)
        self.last_similarity: float | None = None  # cosine of the last verified hit
        self._bb_in = backbone.spec.input.name
        self._rgb = backbone.spec.input.colour == "rgb"  # the manifest's input contract
        self._bb_out = backbone.output_names[0]
        self._head_t = head.spec.input.name
        extra = list(head.spec.extra_inputs)
        if len(extra) != 1:
            raise ValueError(f"head {head.spec.name!r} must have exactly two inputs")
        self._head_x = extra[0]
        self._cls_name, self._loc_name, n = self._head_outputs(head)
        self.grid = n  # head output side: 16 for v2, 15 for v3
        # Point grid relative to the search-crop centre (search-crop pixels), origin -(n//2)*stride
        # as in upstream NanoTrack/OpenCV: exactly centred for odd n (v3: 15); for even n (v2: 16)
        # the trained models expect this half-stride shift (centring it costs v2 ~0.2 mean IoU).
        offs = (np.arange(n, dtype=np.float64) - (n // 2)) * p.stride
        px, py = np.meshgrid(offs, offs)
        self._px = px.ravel()
        self._py = py.ravel()
        han = np.hanning(n)
        self._window_w = np.outer(han, han).ravel() * p.window_influence  # pre-weighted Hanning window
        self._template: np.ndarray | None = None
        self._template_vec: np.ndarray | None = None  # unit float32 core of the first template
        self._core_side = 0
        self._pad: tuple[float, ...] = (0.0, 0.0, 0.0)
        self.center: tuple[float, float] = (0.0, 0.0)  # last good centre
        self.size: tuple[float, float] = (0.0, 0.0)  # last good size
        self.misses = 0
        self.net_seconds = 0.0  # time spent in the networks since init()

    @staticmethod
    def _head_outputs(head: Model) -> tuple[str, str, int]:
        cls_name = loc_name = ""
        side = 0
        for name, shape in head.outputs.items():
            if len(shape) != 4 or not isinstance(shape[-1], int):
                raise ValueError(f"head output {name} has no fixed [1,C,N,N] shape: {shape}")
            if shape[1] == 2:
                cls_name, side = name, int(shape[-1])
            elif shape[1] == 4:
                loc_name = name
        if not cls_name or not loc_name:
            raise ValueError(f"head {head.spec.name!r} needs a 2-channel and a 4-channel output")
        return cls_name, loc_name, side

    # ----------------------------------------------------------------------------- public API

    @property
    def initialised(self) -> bool:
        return self._template is not None

    def init(self, frame_bgr: np.ndarray, box: tuple[float, float, float, float]) -> None:
        """Take the template from ``box`` (x, y, w, h in frame pixels) of ``frame_bgr``."""
        frame = self._check_frame(frame_bgr)
        x, y, w, h = (float(v) for v in box)
        hh, ww = frame.shape[:2]
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise ValueError(f"box must be finite numbers, got {box}")
        if w <= 0 or h <= 0:
            raise ValueError(f"box must have a positive size, got {box}")
        if x >= ww or y >= hh or x + w <= 0 or y + h <= 0:
            raise ValueError(f"box {box} does not overlap the {ww}x{hh} frame")
        p = self.params
        mean = cv2.mean(frame)
        # a pixel value, as OpenCV's border colour always was (rounded half to even, like cvRound)
        self._pad = (float(round(mean[0])), float(round(mean[1])), float(round(mean[2])))
        self.center = (x + w / 2.0, y + h / 2.0)
        self.size = (w, h)
        self.misses = 0
        self.net_seconds = 0.0
        z = crop_square(frame, *self.center, self._template_side(), p.exemplar_size, self._pad, rgb=self._rgb)
        self._template = self._backbone(z)
        core = self._core(self._template)
        self._core_side = int(core.shape[-1])
        self._template_vec = self._unit(core).astype(np.float32)

    def track(self, frame_bgr: np.ndarray) -> TrackResult:
        """Track one frame: the predicted box, its score and the published state."""
        if self._template is None:
            raise RuntimeError("NanoTracker.track() called before init()")
        frame = self._check_frame(frame_bgr)
        p = self.params
        hh, ww = frame.shape[:2]
        s_z = self._template_side()
        scale_z = p.exemplar_size / s_z
        s_x = s_z * p.instance_size / p.exemplar_size
        cands = [self._search(frame, self.center, s_x, scale_z, window=True)]
        wide = self.misses >= p.search_after and (self.misses - p.search_after) % p.search_every == 0
        if wide:
            cands += [
                self._search(frame, tc, side, p.instance_size / side, window=False)
                for tc, side in self._tiles(ww, hh, s_x)
            ]
        cands.sort(key=lambda c: c.score, reverse=True)
        cand, score = cands[0], cands[0].score
        if p.verify:
            # Verify the hits best first (at most 3 on a wide search); the first that looks like
            # the template wins. With none left, the best candidate is published with its
            # gated (below-threshold) score.
            for i, c in enumerate(x for x in cands[:3] if x.score >= self.threshold):
                same_scale = abs(c.crop_scale - scale_z) <= 1e-6 * scale_z
                cos = self._feature_similarity(c) if same_scale else self._similarity(frame, c)
                gated = self._gate(c.score, cos)
                if i == 0:
                    self.last_similarity = cos
                    cand, score = c, gated
                if gated >= self.threshold:
                    self.last_similarity = cos
                    cand, score = c, gated
                    break
        box = self._clip(cand, ww, hh)
        if score >= self.threshold:
            self.center = (box[0] + box[2] / 2.0, box[1] + box[3] / 2.0)
            self.size = (box[2], box[3])
            self.misses = 0
            state: TrackState = "tracking"
        else:
            self.misses += 1
            if wide:
                state = "searching"
            elif self.misses >= p.lost_after:
                state = "lost"
            else:
                state = "tracking"
        return TrackResult(box=box, score=float(score), state=state)

    # ----------------------------------------------------------------------------- internals

    @staticmethod
    def _check_frame(frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError("frame must be an HxWx3 BGR array")
        if frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8, got {frame.dtype}")
        return frame

    def _template_side(self) -> float:
        w, h = self.size
        pad = self.params.context * (w + h)
        return max(1.0, float(round(math.sqrt((w + pad) * (h + pad)))))  # a sub-pixel box: one pixel

    def _backbone(self, x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.backbone.run({self._bb_in: x}, [self._bb_out])[0]
        self.net_seconds += time.perf_counter() - t0
        return out

    def _head(self, xf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self._template is not None
        t0 = time.perf_counter()
        cls, loc = self.head.run({self._head_t: self._template, self._head_x: xf}, [self._cls_name, self._loc_name])
        self.net_seconds += time.perf_counter() - t0
        return cls, loc

    @staticmethod
    def _core(feat: np.ndarray) -> np.ndarray:
        """The central half of a template feature map: the target without its context."""
        n = feat.shape[-1]
        q = n // 4
        return feat[..., q : n - q, q : n - q]

    @staticmethod
    def _unit(feat: np.ndarray) -> np.ndarray:
        v = feat.astype(np.float64).ravel()
        return v / (float(np.linalg.norm(v)) + 1e-12)

    def _search(
        self,
        frame: np.ndarray,
        centre: tuple[float, float],
        side: float,
        scale: float,
        *,
        window: bool,
    ) -> _Candidate:
        """One search crop of ``side`` frame pixels around ``centre``; ``scale`` = crop px / frame px."""
        p = self.params
        x = crop_square(frame, centre[0], centre[1], side, p.instance_size, self._pad, rgb=self._rgb)
        xf = self._backbone(x)
        cls, loc = self._head(xf)
        w0, h0 = self.size
        _, score, penalty, cx, cy, pw, ph = fastpath.siamese_decode(
            cls[0].reshape(2, -1), loc[0].reshape(4, -1), self._px, self._py,
            self._window_w if window else None, w0 * scale, h0 * scale, p.penalty_k, p.window_influence,
        )  # fmt: skip
        lr = penalty * score * p.lr
        return _Candidate(
            cx=centre[0] + cx / scale,
            cy=centre[1] + cy / scale,
            w=w0 * (1.0 - lr) + pw / scale * lr,
            h=h0 * (1.0 - lr) + ph / scale * lr,
            score=score,
            feat=xf,
            crop_centre=centre,
            crop_scale=scale,
        )

    def _tiles(self, ww: int, hh: int, s_x: float) -> list[tuple[tuple[float, float], float]]:
        """Search crops (centre, side) covering the frame, at most ``max_tiles`` of them."""
        p = self.params
        side = min(s_x, float(max(ww, hh)))
        while True:
            step = side * (1.0 - p.tile_overlap)
            nx = 1 if side >= ww else math.ceil((ww - side) / step) + 1
            ny = 1 if side >= hh else math.ceil((hh - side) / step) + 1
            if nx * ny <= p.max_tiles or side >= max(ww, hh):
                break
            side = min(side * 1.25, float(max(ww, hh)))
        xs = np.linspace(side / 2.0, ww - side / 2.0, nx) if nx > 1 else np.array([ww / 2.0])
        ys = np.linspace(side / 2.0, hh - side / 2.0, ny) if ny > 1 else np.array([hh / 2.0])
        return [((float(cx), float(cy)), side) for cy in ys for cx in xs]

    def _similarity(self, frame: np.ndarray, c: _Candidate) -> float:
        """Cosine similarity of the candidate's template features with the initial template's."""
        assert self._template_vec is not None
        pad = self.params.context * (c.w + c.h)
        side = math.sqrt((c.w + pad) * (c.h + pad))
        z = crop_square(frame, c.cx, c.cy, side, self.params.exemplar_size, self._pad, rgb=self._rgb)
        cos = float(self._unit(self._core(self._backbone(z))) @ self._template_vec)
        return cos

    def _feature_similarity(self, c: _Candidate) -> float:
        """Cosine of the search features under the candidate with the initial template's core.

        Search feature ``j`` sits at crop pixel ``c0 + j·stride`` (``c0`` centres the map on the
        crop); the template core is a ``k x k`` window (``k`` = the core's side), sampled
        bilinearly at the candidate's centre and clamped to the map.
        """
        assert self._template_vec is not None and c.feat is not None
        p = self.params
        n = c.feat.shape[-1]
        k = self._core_side
        half = (p.instance_size - 1) / 2.0
        c0 = half - (n - 1) / 2.0 * p.stride
        u = (c.cx - c.crop_centre[0]) * c.crop_scale + half
        v = (c.cy - c.crop_centre[1]) * c.crop_scale + half
        fx = min(max((u - c0) / p.stride - (k - 1) / 2.0, 0.0), float(n - k))
        fy = min(max((v - c0) / p.stride - (k - 1) / 2.0, 0.0), float(n - k))
        return fastpath.window_cosine(c.feat[0], self._template_vec, fx, fy, k)

    def _gate(self, score: float, cos: float) -> float:
        """A verified hit keeps its score; a rejected one drops below the threshold, in
        proportion to how far its cosine is under ``verify_min`` (0 → 0, verify_min → threshold)."""
        lo = self.verify_min
        if cos >= lo:
            return score
        return min(score, self.threshold * max(cos, 0.0) / lo)

    def _clip(self, c: _Candidate, ww: int, hh: int) -> Box:
        m = self.params.min_size
        cx = min(max(float(c.cx), 0.0), float(ww))
        cy = min(max(float(c.cy), 0.0), float(hh))
        w = min(max(float(c.w), m), float(max(ww, m)))
        h = min(max(float(c.h), m), float(max(hh, m)))
        return (cx - w / 2.0, cy - h / 2.0, w, h)


def default_verify_min(model_name: str) -> float:
    """The calibrated template-similarity floor for a tracker model (by manifest name)."""
    for prefix, value in CALIBRATED_VERIFY.items():
        if model_name.startswith(prefix):
            return value
    return DEFAULT_VERIFY


def default_threshold(model_name: str) -> float:
    """The calibrated score threshold for a tracker model (by manifest name), else MaixPy's 0.9."""
    for prefix, value in CALIBRATED_SCORE.items():
        if model_name.startswith(prefix):
            return value
    return DEFAULT_SCORE
