"""siamese_decode, window_cosine, nms, nms_faces and grid_faces: the Cython kernels against the
NumPy reference (the spec)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpath
from tests.fastpath import both, using

F64 = npt.NDArray[np.float64]


def grid(n: int, stride: float = 16.0) -> tuple[F64, F64, F64]:
    offs = (np.arange(n, dtype=np.float64) - n // 2) * stride
    px, py = np.meshgrid(offs, offs)
    han = np.hanning(n)
    return px.ravel(), py.ravel(), np.outer(han, han).ravel()


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 17),
    seed=st.integers(0, 2**32 - 1),
    logit_scale=st.floats(0.1, 800.0),
    sw=st.floats(1.0, 400.0),
    sh=st.floats(1.0, 400.0),
    influence=st.floats(0.0, 1.0),
    k=st.floats(0.0, 0.5),
    use_window=st.booleans(),
)
def test_parity_random(
    n: int, seed: int, logit_scale: float, sw: float, sh: float, influence: float, k: float, use_window: bool
) -> None:
    rng = np.random.default_rng(seed)
    cls = (rng.standard_normal((2, n * n)) * logit_scale).astype(np.float32)
    loc = rng.uniform(-5.0, 200.0, (4, n * n)).astype(np.float32)  # negatives hit the 1e-6 floor
    px, py, han = grid(n)
    window = han * influence if use_window else None
    cy_, py_ = both(fastpath.siamese_decode, cls, loc, px, py, window, sw, sh, k, influence)
    if cy_[0] != py_[0]:  # only a near-tie may pick differently (libm vs NumPy's exp/sqrt)
        ref = fastpath._reference
        a = ref.siamese_decode(cls[:, [cy_[0]]], loc[:, [cy_[0]]], px[[cy_[0]]], py[[cy_[0]]], None, sw, sh, k, 0.0)
        b = ref.siamese_decode(cls[:, [py_[0]]], loc[:, [py_[0]]], px[[py_[0]]], py[[py_[0]]], None, sw, sh, k, 0.0)
        assert abs(a[1] * a[2] - b[1] * b[2]) <= 1e-9
        return
    np.testing.assert_allclose(cy_[1:], py_[1:], rtol=1e-9, atol=1e-12)


def test_pick_and_box() -> None:
    """One confident cell: its box comes back centred on point + (r - l)/2, (b - t)/2."""
    n = 16
    px, py, _ = grid(n)
    cls = np.zeros((2, n * n), np.float32)
    loc = np.full((4, n * n), 30.0, np.float32)
    cell = 5 * n + 9
    cls[1, cell] = 10.0  # target logit: score = 1 / (1 + e^-10)
    loc[:, cell] = (20.0, 10.0, 40.0, 30.0)  # l, t, r, b: 60 x 40, shifted (+10, +10)
    for impl in ("cython", "python"):
        with using(impl):
            best, score, pen, cx, cy, pw, ph = fastpath.siamese_decode(cls, loc, px, py, None, 60.0, 40.0, 0.15, 0.0)
        assert best == cell
        assert score == pytest.approx(1.0 / (1.0 + np.exp(-10.0)))
        assert pen == pytest.approx(1.0)  # same size and aspect as the last one: no penalty
        assert (cx, cy, pw, ph) == pytest.approx((px[cell] + 10.0, py[cell] + 10.0, 60.0, 40.0))


def test_nan_picks_first_nan_like_argmax() -> None:
    px, py, _ = grid(4)
    cls = np.zeros((2, 16), np.float32)
    cls[0, 3] = np.nan
    cls[0, 7] = np.nan
    loc = np.full((4, 16), 10.0, np.float32)
    cy_, py_ = both(fastpath.siamese_decode, cls, loc, px, py, None, 20.0, 20.0, 0.15, 0.0)
    assert cy_[0] == py_[0] == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cls": np.zeros((2, 4), np.float64)}, "cls must be a float32"),
        ({"loc": np.zeros((3, 4), np.float32)}, "loc must be a float32"),
        ({"loc": np.zeros((4, 5), np.float32)}, "same N"),
        ({"px": np.zeros(3)}, "px must be a float64"),
        ({"window": np.zeros(4, np.float32)}, "window must be a float64"),
        ({"sw": 0.0}, "> 0"),
        ({"sh": float("nan")}, "finite"),
    ],
)
def test_validation(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "cls": np.zeros((2, 4), np.float32), "loc": np.ones((4, 4), np.float32), "px": np.zeros(4),
        "py": np.zeros(4), "window": None, "sw": 10.0, "sh": 10.0, "penalty_k": 0.15, "window_influence": 0.4,
    }  # fmt: skip
    args.update(kwargs)
    for impl in ("cython", "python"):
        with using(impl), pytest.raises(ValueError, match=match):
            fastpath.siamese_decode(**args)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(
    ch=st.integers(1, 8),
    n=st.integers(1, 16),
    k=st.integers(1, 16),
    fx=st.floats(0.0, 1.0),
    fy=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_window_cosine_parity(ch: int, n: int, k: int, fx: float, fy: float, seed: int) -> None:
    k = min(k, n)
    rng = np.random.default_rng(seed)
    feat = rng.standard_normal((ch, n, n)).astype(np.float32)
    unit = rng.standard_normal(ch * k * k).astype(np.float32)
    unit /= np.linalg.norm(unit)
    x, y = fx * (n - k), fy * (n - k)  # the whole valid range, both ends included
    cy_, py_ = both(fastpath.window_cosine, feat, unit, x, y, k)
    assert cy_ == pytest.approx(py_, rel=1e-9, abs=1e-12)
    assert -1.0 - 1e-9 <= cy_ <= 1.0 + 1e-9


def test_window_cosine_finds_the_window() -> None:
    """A window cut from the map at whole cells has cosine 1 with itself, less elsewhere."""
    rng = np.random.default_rng(2)
    feat = rng.standard_normal((4, 16, 16)).astype(np.float32)
    unit = feat[:, 5:9, 3:7].ravel().copy()
    unit /= np.linalg.norm(unit)
    for impl in ("cython", "python"):
        with using(impl):
            assert fastpath.window_cosine(feat, unit, 3.0, 5.0, 4) == pytest.approx(1.0)
            assert fastpath.window_cosine(feat, unit, 3.5, 5.0, 4) < 0.9
            assert fastpath.window_cosine(feat, unit, 10.0, 1.0, 4) < 0.5


@pytest.mark.parametrize(
    ("x", "y", "k", "unit_len", "match"),
    [
        (12.5, 0.0, 4, 64, "must lie in"),
        (-0.1, 0.0, 4, 64, "must lie in"),
        (0.0, 0.0, 17, 64, "k must be"),
        (0.0, 0.0, 4, 63, "unit must be"),
    ],
)
def test_window_cosine_validation(x: float, y: float, k: int, unit_len: int, match: str) -> None:
    feat = np.zeros((4, 16, 16), np.float32)
    for impl in ("cython", "python"):
        with using(impl), pytest.raises(ValueError, match=match):
            fastpath.window_cosine(feat, np.zeros(unit_len, np.float32), x, y, k)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
    iou_th=st.floats(0.0, 1.0),
    max_keep=st.one_of(st.none(), st.integers(0, 70)),
    n_classes=st.integers(0, 4),
)
def test_nms_parity_random(n: int, seed: int, iou_th: float, max_keep: int | None, n_classes: int) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-20, 200, (n, 2))
    wh = rng.uniform(-5, 80, (n, 2))  # some empty (negative) boxes
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.choice(np.linspace(0, 1, 7), n).astype(np.float32)  # ties: the lower index first
    classes = rng.integers(0, n_classes, n) if n_classes else None
    cy_, py_ = both(fastpath.nms, boxes, scores, iou_th, max_keep=max_keep, classes=classes)
    assert cy_.dtype == py_.dtype == np.int64
    assert cy_.tolist() == py_.tolist()


def test_nms_meaning() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    for impl in ("cython", "python"):
        with using(impl):
            assert fastpath.nms(boxes, scores, 0.5).tolist() == [3, 2]  # 0 and 1 overlap 3
            assert fastpath.nms(boxes, scores, 0.5, max_keep=1).tolist() == [3]
            # another class is never suppressed
            assert fastpath.nms(boxes, scores, 0.5, classes=[0, 1, 0, 0]).tolist() == [3, 1, 2]
            assert fastpath.nms(boxes[:0], scores[:0], 0.5).tolist() == []
    nan_box = boxes.copy()
    nan_box[1, 0] = np.nan  # its IoU is NaN: dropped under the kept box, as the spec says
    assert fastpath.nms(nan_box, scores, 0.5).tolist() == [3, 2]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((3, 3)), np.zeros(3), 0.5), {}, r"boxes must be \(N, 4\)"),
        ((np.zeros((3, 4)), np.zeros(2), 0.5), {}, "scores must be"),
        ((np.zeros((3, 4)), np.zeros(3), float("nan")), {}, "iou_th must be finite"),
        ((np.zeros((3, 4)), np.zeros(3), 0.5), {"max_keep": -1}, "max_keep"),
        ((np.zeros((3, 4)), np.zeros(3), 0.5), {"classes": [1, 2]}, "classes must be"),
    ],
)
def test_nms_validation(args: tuple[object, ...], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fastpath.nms(*args, **kwargs)  # type: ignore[arg-type]


def _grid_outputs(
    rng: np.random.Generator, n: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    cls = rng.uniform(-0.3, 1.3, n).astype(np.float32)  # outside 0..1 too: clipped
    obj = rng.uniform(-0.3, 1.3, n).astype(np.float32)
    cls[rng.random(n) < 0.05] = np.nan  # a NaN score never passes
    bbox = rng.normal(0.0, 1.0, (n, 4)).astype(np.float32)
    kps = rng.normal(0.0, 2.0, (n, 10)).astype(np.float32)
    return cls, obj, bbox, kps


def test_grid_faces_takes_yunet_outputs_as_they_come() -> None:
    """YuNet's (1, N, k) float32 outputs in a list or tuple go straight to the kernel (its own
    checks, no Python-level validation: the per-frame path); anything else takes the validating
    path to the same result."""
    rng = np.random.default_rng(3)
    levels = [
        (c.reshape(1, -1, 1), o.reshape(1, -1, 1), b.reshape(1, -1, 4), k.reshape(1, -1, 10), cols, s)
        for c, o, b, k, cols, s in _levels(rng, (96, 128), (8, 16, 32))
    ]
    args = (0.5, 0.3, 20, 0.8, 160.0, 120.0)
    kernels = fastpath._kernels
    assert kernels is not None
    direct = kernels[2].grid_faces(levels, *args)
    assert direct is not None and len(direct[1]) > 3
    assert kernels[2].grid_faces(tuple(levels), *args) is not None
    flat = [(c.ravel(), o.ravel(), b.reshape(-1, 4), k.reshape(-1, 10), cols, s) for c, o, b, k, cols, s in levels]
    assert kernels[2].grid_faces(flat, *args) is None  # not YuNet's layout: validated first
    every = kernels[2].grid_faces(levels, 0.5, 0.3, 10**6, 0.8, 160.0, 120.0)
    for got, want in (
        (fastpath.grid_faces(flat, *args), direct),
        (fastpath.grid_faces(levels, np.float64(0.5), 0.3, 20, 0.8, 160, 120), direct),  # other scalar types
        (fastpath.grid_faces(levels, 0.5, 0.3, 10**30, 0.8, 160.0, 120.0), every),  # beyond any count
    ):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
    empty = np.zeros((1, 0, 1), np.float32)
    none = (empty, empty, np.zeros((1, 0, 4), np.float32), np.zeros((1, 0, 10), np.float32), 7, 8.0)
    assert fastpath.grid_faces([none, *levels], *args)[1].tolist() == direct[1].tolist()


def test_grid_faces_meaning() -> None:
    """A 2x3 grid, stride 10: only cell (row 1, col 2) passes; its box and landmarks in pixels."""
    n = 6
    cls = np.full(n, 0.5, np.float32)
    obj = np.full(n, 0.1, np.float32)
    obj[5] = 0.98  # sqrt(0.5 * 0.98) = 0.7
    bbox = np.zeros((n, 4), np.float32)
    bbox[5] = [0.5, 0.25, np.log(4.0), np.log(2.0)]
    kps = np.zeros((n, 10), np.float32)
    kps[5] = np.arange(10) / 10
    level = (cls, obj, bbox, kps, 3, 10.0)
    for impl in ("cython", "python"):
        with using(impl):
            boxes, scores, points = fastpath.grid_faces([level], 0.6, 0.3, 10, 1.0, 100.0, 100.0)
            assert scores.tolist() == pytest.approx([0.7])
            # centre ((2 + 0.5) * 10, (1 + 0.25) * 10) = (25, 12.5), size (40, 20): x, y, w, h
            np.testing.assert_allclose(boxes, [[5.0, 2.5, 40.0, 20.0]], rtol=1e-6)
            np.testing.assert_allclose(points[0, 0], [20.0, 11.0], rtol=1e-6)  # (2 + 0.0, 1 + 0.1) * 10
            np.testing.assert_allclose(points[0, 4], [28.0, 19.0], rtol=1e-6)  # (2 + 0.8, 1 + 0.9) * 10
            none = fastpath.grid_faces([level], 0.9, 0.3, 10, 1.0, 100.0, 100.0)
            assert [a.shape for a in none] == [(0, 4), (0,), (0, 5, 2)]
            assert fastpath.grid_faces([], 0.5, 0.3, 10, 1.0, 100.0, 100.0)[1].shape == (0,)


def _faces_agree(cy_: fastpath.FaceArrays, py_: fastpath.FaceArrays, boxes: npt.NDArray[np.float32]) -> None:
    """The same faces, in the same order; coordinates to a few units in the last place (expf and
    a division the compiler may turn into a multiplication)."""
    got: list[npt.NDArray[Any]] = list(cy_)
    want: list[npt.NDArray[Any]] = list(py_)
    assert [(a.dtype, a.shape) for a in got] == [(a.dtype, a.shape) for a in want]
    np.testing.assert_array_equal(cy_[1], py_[1])
    scale = max(1.0, float(np.abs(boxes[np.isfinite(boxes)]).max(initial=1.0)))
    np.testing.assert_allclose(cy_[0], py_[0], rtol=1e-6, atol=4e-6 * scale)
    np.testing.assert_allclose(cy_[2], py_[2], rtol=1e-6, atol=4e-6 * scale)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
    iou_th=st.sampled_from([0.0, 0.3, 0.4, 0.7, 1.0]),
    max_keep=st.integers(0, 70),
    scale=st.sampled_from([1.0, 0.5, 1.3333334, 2.0]),
    broken=st.booleans(),
)
def test_nms_faces_parity(n: int, seed: int, iou_th: float, max_keep: int, scale: float, broken: bool) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-40, 200, (n, 2))
    wh = rng.uniform(-5, 80, (n, 2))  # some empty boxes; some outside the frame after the scale
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.choice(np.linspace(0, 1, 7), n).astype(np.float32)  # ties: the lower index first
    points = rng.uniform(-10, 200, (n, 5, 2)).astype(np.float32)
    if broken and n:  # a broken model's candidates: never faces
        boxes[rng.integers(0, n), rng.integers(0, 4)] = rng.choice([np.nan, np.inf, -np.inf])
        points[rng.integers(0, n), rng.integers(0, 5), rng.integers(0, 2)] = np.nan
        scores[rng.integers(0, n)] = np.nan
    cy_, py_ = both(fastpath.nms_faces, boxes, scores, points, iou_th, max_keep, scale, 150.0, 120.0)
    _faces_agree(cy_, py_, boxes)
    assert len(cy_[1]) <= max_keep
    assert np.isfinite(cy_[0]).all() and np.isfinite(cy_[2]).all()
    x, y, w, h = cy_[0].T if len(cy_[0]) else np.zeros((4, 0))
    assert (x >= 0).all() and (y >= 0).all() and (w > 0).all() and (h > 0).all()
    assert (x + w <= 150.0 + 1e-9).all() and (y + h <= 120.0 + 1e-9).all()


def test_nms_faces_meaning() -> None:
    """Two overlapping faces and one apart, at scale 0.5 (input = frame / 2), one box half out."""
    boxes = np.array([[10, 10, 30, 30], [11, 11, 31, 31], [40, 5, 60, 25], [-10, -10, 5, 5]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.6], np.float32)
    points = np.tile(np.arange(10, dtype=np.float32), (4, 1)).reshape(4, 5, 2)
    for impl in ("cython", "python"):
        with using(impl):
            b, s, p = fastpath.nms_faces(boxes, scores, points, 0.4, 10, 0.5, 100.0, 45.0)
            assert s.tolist() == pytest.approx([0.9, 0.7, 0.6])  # 0 goes under 1
            np.testing.assert_allclose(b, [[22, 22, 40, 23], [80, 10, 20, 35], [0, 0, 10, 10]])
            np.testing.assert_allclose(p[0].ravel(), np.arange(10) * 2.0)
            assert fastpath.nms_faces(boxes, scores, points, 0.4, 1, 0.5, 100.0, 45.0)[1].tolist() == [
                pytest.approx(0.9)
            ]
            assert fastpath.nms_faces(boxes[:0], scores[:0], points[:0], 0.4, 10, 1.0, 9.0, 9.0)[0].shape == (0, 4)


def _levels(rng: np.random.Generator, shape: tuple[int, int], strides: tuple[int, ...]) -> list[fastpath.GridLevel]:
    h, w = shape
    levels: list[fastpath.GridLevel] = []
    for s in strides:
        rows, cols = h // s, w // s
        cls, obj, bbox, kps = _grid_outputs(rng, rows * cols)
        # YuNet's own layout (1, N, k) on the first level, flat arrays on the others
        if s == strides[0]:
            levels.append((cls[None, :, None], obj[None, :, None], bbox[None], kps[None], cols, float(s)))
        else:
            levels.append((cls, obj, bbox, kps, cols, float(s)))
    return levels


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    score_th=st.sampled_from([0.0, 0.3, 0.6, 0.9]),
    iou_th=st.sampled_from([0.3, 0.4, 1.0]),
    max_keep=st.integers(0, 2000),
    scale=st.sampled_from([1.0, 0.75, 2.0]),
)
def test_grid_faces_parity(
    rows: int, cols: int, seed: int, score_th: float, iou_th: float, max_keep: int, scale: float
) -> None:
    """Random grids with NaN scores, scores outside 0..1 and boxes partly outside the frame."""
    rng = np.random.default_rng(seed)
    shape = (rows * 32, cols * 32)
    levels = _levels(rng, shape, (8, 16, 32))
    if rng.random() < 0.3:  # exp overflows on a passing cell: an infinite box is no face
        levels[1][2].reshape(-1, 4)[:, 2] = 100.0
    fw, fh = shape[1] / scale, shape[0] / scale
    cy_, py_ = both(fastpath.grid_faces, levels, score_th, iou_th, max_keep, scale, fw, fh)
    if cy_[1].tolist() != py_[1].tolist():  # only a near-tie in IoU may decide otherwise (expf vs exp)
        assert iou_th < 1.0
        return
    _faces_agree(cy_, py_, np.array([fw, fh], np.float32))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda lv: [lv[0][:5]], "a grid level is"),
        (lambda lv: [(lv[0][0], lv[0][1][:, :3], *lv[0][2:])], "same cells"),
        (lambda lv: [(*lv[0][:4], 7, 8.0)], "cols must be"),
        (lambda lv: [(*lv[0][:4], lv[0][4], 0.0)], "stride must be"),
        (lambda lv: [(lv[0][0], lv[0][1], np.zeros(5, np.float32), *lv[0][3:])], "4 value"),
    ],
    ids=["short level", "cells", "cols", "stride", "bbox values"],
)
def test_grid_faces_validation(change: Callable[[list[fastpath.GridLevel]], Any], match: str) -> None:
    levels = _levels(np.random.default_rng(0), (32, 64), (8,))
    for impl in ("cython", "python"):
        with using(impl), pytest.raises(ValueError, match=match):
            fastpath.grid_faces(change(levels), 0.5, 0.3, 10, 1.0, 64.0, 32.0)
        with using(impl), pytest.raises(ValueError, match="score_th must be finite"):
            fastpath.grid_faces(levels, float("nan"), 0.3, 10, 1.0, 64.0, 32.0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((float("nan"), 10, 1.0, 64.0, 32.0), "iou_th must be finite"),
        ((0.3, -1, 1.0, 64.0, 32.0), "max_keep"),
        ((0.3, 10, 0.0, 64.0, 32.0), "scale must be"),
        ((0.3, 10, 1.0, float("inf"), 32.0), "width and height"),
    ],
)
def test_nms_faces_validation(args: tuple[float, int, float, float, float], match: str) -> None:
    boxes, scores, points = np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros((2, 5, 2), np.float32)
    with pytest.raises(ValueError, match=match):
        fastpath.nms_faces(boxes, scores, points, *args)
    with pytest.raises(ValueError, match="points must be"):
        fastpath.nms_faces(boxes, scores, points[:, :4], 0.3, 10, 1.0, 64.0, 32.0)
    with pytest.raises(ValueError, match="boxes must be"):
        fastpath.nms_faces(boxes[:, :3], scores, points, 0.3, 10, 1.0, 64.0, 32.0)
