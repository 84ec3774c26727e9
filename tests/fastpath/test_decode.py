"""siamese_decode, window_cosine and nms: the Cython kernels against the NumPy reference (the spec)."""

from __future__ import annotations

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


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    stride=st.sampled_from([8.0, 16.0, 32.0, 3.5]),
    score_th=st.sampled_from([-1.0, 0.0, 0.3, 0.6, 0.99, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_grid_decode_parity_random(rows: int, cols: int, stride: float, score_th: float, seed: int) -> None:
    cls, obj, bbox, kps = _grid_outputs(np.random.default_rng(seed), rows * cols)
    cy_, py_ = both(fastpath.grid_decode, cls, obj, bbox, kps, cols, stride, score_th)
    for got, want in zip(cy_, py_, strict=True):
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(cy_[1], py_[1])  # the same cells, the same scores
    # boxes: expf against NumPy's exp, a unit in the last place at most
    np.testing.assert_allclose(cy_[0], py_[0], rtol=2e-6, atol=1e-5 * stride)
    np.testing.assert_array_equal(cy_[2], py_[2])


def test_grid_decode_meaning() -> None:
    """A 2x3 grid, stride 10: only cell (row 1, col 2) passes; its box and landmarks in pixels."""
    n = 6
    cls = np.full(n, 0.5, np.float32)
    obj = np.full(n, 0.1, np.float32)
    obj[5] = 0.98  # sqrt(0.5 * 0.98) = 0.7
    bbox = np.zeros((n, 4), np.float32)
    bbox[5] = [0.5, 0.25, np.log(4.0), np.log(2.0)]
    kps = np.zeros((n, 10), np.float32)
    kps[5] = np.arange(10) / 10
    for impl in ("cython", "python"):
        with using(impl):
            boxes, scores, points = fastpath.grid_decode(cls, obj, bbox, kps, 3, 10.0, 0.6)
            assert scores.tolist() == pytest.approx([0.7])
            # centre ((2 + 0.5) * 10, (1 + 0.25) * 10) = (25, 12.5), size (40, 20)
            np.testing.assert_allclose(boxes, [[5.0, 2.5, 45.0, 22.5]], rtol=1e-6)
            np.testing.assert_allclose(points[0, 0], [20.0, 11.0], rtol=1e-6)  # (2 + 0.0, 1 + 0.1) * 10
            np.testing.assert_allclose(points[0, 4], [28.0, 19.0], rtol=1e-6)  # (2 + 0.8, 1 + 0.9) * 10
            none = fastpath.grid_decode(cls, obj, bbox, kps, 3, 10.0, 0.9)
            assert [a.shape for a in none] == [(0, 4), (0,), (0, 5, 2)]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros(6), np.zeros(5), np.zeros((6, 4)), np.zeros((6, 10)), 3, 8.0, 0.5), "same cells"),
        ((np.zeros(6), np.zeros(6), np.zeros((6, 4)), np.zeros((6, 10)), 4, 8.0, 0.5), "cols"),
        ((np.zeros(6), np.zeros(6), np.zeros((6, 4)), np.zeros((6, 10)), 3, 0.0, 0.5), "stride"),
        ((np.zeros(6), np.zeros(6), np.zeros((6, 4)), np.zeros((6, 10)), 3, 8.0, float("nan")), "score_th"),
    ],
)
def test_grid_decode_validation(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fastpath.grid_decode(*args)  # type: ignore[arg-type]
