"""align_face / align_crop / similarity: the Cython kernel at every SIMD level against the NumPy
reference (exactly: the crop's bytes, the blob's floats and the fit's matrix, bit for bit), the
blob against the crop converted, and the crop against cv2.warpAffine (at most 1 grey level on
real aligned faces and on random matrices inside real images; the fraction of identical values
is asserted too, so a drift shows).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpath
from fastpath import _reference as ref
from tests.fastpath import ARCFACE, REAL_IMAGES, random_image, read_image, using
from tests.fastpath.test_crop_stats import FACE_SETS, LFW_POINTS

F64 = npt.NDArray[np.float64]
TEMPLATE = ARCFACE.astype(np.float64)


def template(size: int) -> F64:
    return TEMPLATE * (size / 112)


def face_points(rng: np.random.Generator, cx: float, cy: float, spread: float) -> npt.NDArray[np.float32]:
    """5 landmarks of a plausible face: the template rotated, scaled, moved and jittered."""
    ang = rng.uniform(-0.7, 0.7)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    pts = (TEMPLATE - 56.0) @ rot.T * spread + (cx, cy) + rng.normal(0, spread * 1.5, (5, 2))
    return np.asarray(pts, dtype=np.float32)


Aligned = tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]


def run_all(frame: npt.NDArray[np.uint8], points: object, tmpl: object, size: int, **kw: object) -> Aligned:
    """(crop, blob) of the reference, asserting every SIMD level of the kernel gives the same."""
    with using("python"):
        want = fastpath.align_face(frame, points, tmpl, size, **kw)  # type: ignore[arg-type]
    for level in ("avx2", "sse2", "c"):
        fastpath.set_implementation("auto")
        fastpath.set_simd_level(level)
        try:
            with using("cython"):
                got = fastpath.align_face(frame, points, tmpl, size, **kw)  # type: ignore[arg-type]
                crop_only = fastpath.align_crop(frame, points, tmpl, size)  # type: ignore[arg-type]
        finally:
            fastpath.set_simd_level(None)
        assert got[0].dtype == np.uint8 and got[0].shape == (size, size, 3)
        assert got[1].dtype == np.float32 and got[1].shape == (1, 3, size, size)
        np.testing.assert_array_equal(got[0], want[0], err_msg=level)
        np.testing.assert_array_equal(got[1], want[1], err_msg=level)
        np.testing.assert_array_equal(crop_only, want[0], err_msg=level)
    return want


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 60),
    w=st.integers(1, 60),
    size=st.integers(1, 40),
    cx=st.floats(-30, 90),
    cy=st.floats(-30, 90),
    spread=st.floats(0.05, 3.0),
    swap=st.booleans(),
    mean=st.one_of(st.floats(-300, 300), st.tuples(*[st.floats(-300, 300)] * 3)),
    scale=st.one_of(st.floats(-2, 2), st.tuples(*[st.floats(-2, 2)] * 3)),
    f64=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_parity_random(
    h: int, w: int, size: int, cx: float, cy: float, spread: float, swap: bool,
    mean: float | tuple[float, float, float], scale: float | tuple[float, float, float], f64: bool, seed: int,
) -> None:  # fmt: skip
    """Random frames, faces inside, across and outside the border, any size, swap/mean/scale."""
    rng = np.random.default_rng(seed)
    frame = random_image(rng, h, w)
    pts = face_points(rng, cx, cy, spread)
    points = pts.astype(np.float64) if f64 else pts
    crop, blob = run_all(frame, points, template(size), size, swap_rb=swap, mean=mean, scale=scale)
    # the blob is the crop converted, as letterbox_chw's reference converts a picture
    m3 = np.array(mean if isinstance(mean, tuple) else (mean,) * 3, np.float32)
    s3 = np.array(scale if isinstance(scale, tuple) else (scale,) * 3, np.float32)
    conv = np.empty((1, 3, size, size), np.float32)
    ref.letterbox_chw(crop, size, size, "stretch", swap, m3, s3, np.zeros(3, np.float32), conv)
    np.testing.assert_array_equal(blob, conv)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 16), seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 1e4))
def test_similarity_parity(n: int, seed: int, scale: float) -> None:
    """fastpath.similarity == the reference bit for bit, for 1..16 points (float32 or float64)."""
    rng = np.random.default_rng(seed)
    src = (rng.normal(0, scale, (n, 2)) + rng.uniform(-1e3, 1e3, 2)).astype(np.float32)
    dst = rng.normal(50, 20, (n, 2))
    want = np.array(ref.similarity(src.astype(np.float64).tolist(), dst.tolist())).reshape(2, 3)
    with using("cython"):
        got = fastpath.similarity(src, dst)
    with using("python"):
        py = fastpath.similarity(src, dst)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(py, want)


def test_similarity_recovers_a_transform() -> None:
    ang, s, t = 0.3, 1.7, np.array([12.0, -5.0])
    rot = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = TEMPLATE @ rot.T + t
    m = fastpath.similarity(TEMPLATE, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-12)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)
    same = fastpath.similarity(np.ones((5, 2)), TEMPLATE)  # coinciding points: translation only
    np.testing.assert_allclose(same, [[1, 0, TEMPLATE[:, 0].mean() - 1], [0, 1, TEMPLATE[:, 1].mean() - 1]])


def test_identity_is_the_frame() -> None:
    """Points on the template itself: the crop is the frame's top-left corner, bit for bit."""
    frame = random_image(np.random.default_rng(1), 130, 120)
    crop, blob = run_all(frame, TEMPLATE.astype(np.float32), TEMPLATE, 112, swap_rb=True)
    np.testing.assert_array_equal(crop, frame[:112, :112])
    np.testing.assert_array_equal(blob[0], frame[:112, :112, ::-1].transpose(2, 0, 1).astype(np.float32))


def test_border_is_zero() -> None:
    """A face half off the frame: pixels mapped outside are 0; one tap outside counts as 0."""
    frame = np.full((200, 100, 3), 200, np.uint8)
    pts = (TEMPLATE + np.array([-56.0, 10.0])).astype(np.float32)  # crop column 56 on frame column 0
    crop, _ = run_all(frame, pts, TEMPLATE, 112)
    assert (crop[:, :55] == 0).all() and (crop[:, 57:] == 200).all()
    half = (TEMPLATE + np.array([-56.5, 10.0])).astype(np.float32)  # column 56 half a pixel left of 0
    crop, _ = run_all(frame, half, TEMPLATE, 112)
    assert (crop[:, 56] == 100).all() and (crop[:, 57] == 200).all()


def test_far_frames_take_the_int64_path() -> None:
    """Positions beyond the int32 SIMD range (a 1 x 40000 frame) give the reference's bytes."""
    frame = random_image(np.random.default_rng(2), 3, 40000)
    pts = (TEMPLATE * 1.5 + (39000.0, -60.0)).astype(np.float32)
    crop, _ = run_all(frame, pts, TEMPLATE, 112)
    assert crop.any()


def _cv2_crop(frame: npt.NDArray[np.uint8], points: object, size: int) -> npt.NDArray[np.uint8]:
    m = fastpath.similarity(points, template(size))  # type: ignore[arg-type]
    warped = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return np.asarray(warped, dtype=np.uint8)


def _real_faces(eval_dir: Path) -> list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]]:
    root = eval_dir / "faces_open"
    out = []
    for folder, people, each in FACE_SETS:
        for person in sorted((root / folder).iterdir())[:people]:
            for path in sorted(person.iterdir())[:each]:
                frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
                assert frame is not None, path
                h, w = frame.shape[:2]
                spread = np.array([w / 112, h / 112], np.float32)  # as test_crop_stats' crops
                pts = LFW_POINTS if folder == "lfw_deepfunneled" else ARCFACE * spread
                out.append((np.ascontiguousarray(frame, dtype=np.uint8), np.asarray(pts, dtype=np.float32)))
    return out


def test_close_to_opencv_on_real_faces(eval_dir: Path) -> None:
    """Real face images aligned at 112 (and 128): within 1 grey level of cv2.warpAffine."""
    same = total = 0
    for frame, pts in _real_faces(eval_dir):
        for size in (112, 128):
            crop, _ = run_all(frame, pts, template(size), size)
            diff = np.abs(crop.astype(np.int16) - _cv2_crop(frame, pts, size))
            assert diff.max() <= 1
            same += int((diff == 0).sum())
            total += diff.size
    assert same / total > 0.98, same / total


@pytest.mark.parametrize("rel", REAL_IMAGES)
def test_close_to_opencv_random_matrices(eval_dir: Path, rel: str) -> None:
    """Random faces (angles, scales 0.3-4) inside real images: within 1 grey level of OpenCV."""
    frame = read_image(eval_dir, rel)
    h, w = frame.shape[:2]
    rng = np.random.default_rng(11)
    same = total = 0
    for _ in range(20):
        spread = rng.uniform(0.3, min(4.0, (min(h, w) / 2 - 10) / 85))
        margin = 85 * spread + 10  # the crop's corners lie within 80 spreads of its centre
        pts = face_points(rng, rng.uniform(margin, w - margin), rng.uniform(margin, h - margin), spread)
        crop = fastpath.align_crop(frame, pts, template(112), 112)
        diff = np.abs(crop.astype(np.int16) - _cv2_crop(frame, pts, 112))
        assert diff.max() <= 1
        same += int((diff == 0).sum())
        total += diff.size
    assert same / total > 0.97, same / total


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((4, 4), np.uint8), ARCFACE, TEMPLATE, 112), "HxWx3"),
        ((np.zeros((4, 4, 3), np.float32), ARCFACE, TEMPLATE, 112), "uint8"),
        ((np.zeros((4, 4, 3), np.uint8), ARCFACE, TEMPLATE, 0), "positive integer"),
        ((np.zeros((4, 4, 3), np.uint8), ARCFACE[:4], TEMPLATE, 112), "as many points"),
        ((np.zeros((4, 4, 3), np.uint8), ARCFACE.ravel(), TEMPLATE, 112), r"\(N, 2\)"),
        ((np.zeros((4, 4, 3), np.uint8), np.full((5, 2), np.nan, np.float32), TEMPLATE, 112), "finite"),
        ((np.zeros((4, 4, 3), np.uint8), ARCFACE, np.full((5, 2), np.inf), 112), "finite"),
        ((np.zeros((4, 4, 3), np.uint8), ARCFACE, np.ones((5, 2)), 112), "degenerate"),  # singular
        ((np.zeros((4, 4, 3), np.uint8), ARCFACE * 1e30, TEMPLATE, 112), "degenerate"),  # beyond 2^24 px
        ((np.zeros((4, 4, 3), np.uint8), np.zeros((17, 2)), np.zeros((17, 2)), 112), "N <= 16"),
    ],
)
@pytest.mark.parametrize("impl", ["cython", "python"])
def test_validation(args: tuple[object, ...], match: str, impl: str) -> None:
    with using(impl), pytest.raises(ValueError, match=match):
        fastpath.align_face(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_nan_in_one_landmark_is_refused(impl: str) -> None:
    pts = ARCFACE.copy()
    pts[2, 1] = np.nan
    with using(impl):
        with pytest.raises(ValueError, match="finite"):
            fastpath.align_face(np.zeros((8, 8, 3), np.uint8), pts, TEMPLATE, 112)
        with pytest.raises(ValueError, match="finite"):
            fastpath.align_crop(np.zeros((8, 8, 3), np.uint8), pts, TEMPLATE, 112)
        with pytest.raises(ValueError, match="finite"):
            fastpath.similarity(pts, TEMPLATE)
        with pytest.raises(ValueError, match="finite"):
            fastpath.align_face(np.zeros((8, 8, 3), np.uint8), ARCFACE, TEMPLATE, 8, mean=float("nan"))


def test_other_inputs_are_converted() -> None:
    """Lists, a non-contiguous frame view is refused, int mean/scale and lists of points work."""
    frame = random_image(np.random.default_rng(4), 150, 150)
    pts = (TEMPLATE + 5).astype(np.float32)
    want = fastpath.align_face(frame, pts, TEMPLATE, 112, mean=1.0, scale=2.0)
    got = fastpath.align_face(frame, pts.tolist(), TEMPLATE.tolist(), 112, mean=1, scale=[2, 2, 2])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(ValueError, match="C-contiguous"):
        fastpath.align_face(frame[:, ::2], pts, TEMPLATE, 112)
