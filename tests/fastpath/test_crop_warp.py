"""crop_resize and warp_affine_chw: parity with the reference, and the reference vs OpenCV.

Tolerances: crop_resize Cython vs reference ≤ 1e-3 grey levels; the reference crop vs
cv2.warpAffine of the same window within 4 grey levels max, 0.5 mean (OpenCV's 1/32 px positions).
warp_affine_chw's reference *is* cv2.warpAffine, which quantises sub-pixel positions to 1/32 px and
weights to 15 bits: the exact-bilinear Cython kernel is within 4 grey levels max, 0.5 mean.
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
from tests.fastpath import ARCFACE, REAL_IMAGES, both, random_image, read_image, using


def warp_matrix(cx: float, cy: float, side: float, out: int) -> npt.NDArray[np.float64]:
    """The crop as an affine map of pixel indices (what cv2.warpAffine takes): output pixel centre
    ``o + 0.5`` sits at window coordinate ``(o + 0.5) * side / out`` from the window's corner."""
    s = out / side
    x0, y0 = cx - side / 2.0, cy - side / 2.0
    return np.array([[s, 0.0, s * (0.5 - x0) - 0.5], [0.0, s, s * (0.5 - y0) - 0.5]])


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    cx=st.floats(-20, 60),
    cy=st.floats(-20, 60),
    side_w=st.floats(0.5, 50),
    side_h=st.floats(0.5, 50),
    out_w=st.integers(1, 32),
    out_h=st.integers(1, 32),
    border=st.one_of(st.none(), st.tuples(*[st.integers(0, 255)] * 3)),
    swap=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_crop_parity_random(
    h: int, w: int, cx: float, cy: float, side_w: float, side_h: float, out_w: int, out_h: int,
    border: tuple[int, int, int] | None, swap: bool, seed: int,
) -> None:  # fmt: skip
    img = random_image(np.random.default_rng(seed), h, w)
    cy_, py_ = both(
        fastpath.crop_resize, img, cx, cy, side_w, side_h, out_w, out_h, border=border,
        swap_rb=swap, mean=(1.0, 2.0, 3.0), scale=0.5,
    )  # fmt: skip
    assert cy_.shape == (1, 3, out_h, out_w)
    np.testing.assert_allclose(cy_, py_, rtol=0, atol=1e-3)


@pytest.mark.parametrize("rel", REAL_IMAGES)
@pytest.mark.parametrize(
    ("cx", "cy", "side", "out"),
    [
        (300.0, 200.0, 150.0, 127),
        (10.0, 15.0, 300.0, 255),
        (320.0, 240.0, 254.0, 127),
        (200.5, 150.5, 127.0, 127),
        (-30.0, 700.0, 80.0, 127),
        (100.4, 99.6, 127.3, 127),
        (233.7, 181.2, 181.6, 255),  # a tracker search crop: enlarging, sub-pixel corner
    ],
)
def test_crop_matches_warp_affine(
    eval_dir: Path, rel: str, cx: float, cy: float, side: float, out: int, simd: str
) -> None:
    """The spec is cv2.warpAffine of the same window (which quantises positions to 1/32 px)."""
    img = read_image(eval_dir, rel)
    border = (10, 120, 240)
    want = cv2.warpAffine(
        img, warp_matrix(cx, cy, side, out), (out, out), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=border,
    ).astype(np.float32).transpose(2, 0, 1)  # fmt: skip
    cy_, py_ = both(fastpath.crop_resize, img, cx, cy, side, side, out, out, border=border)
    np.testing.assert_allclose(cy_, py_, rtol=0, atol=1e-3)
    diff = np.abs(py_[0] - want)
    assert diff.max() <= 4.0 and diff.mean() <= 0.5, (diff.max(), diff.mean())


def test_crop_whole_pixels_is_a_slice() -> None:
    """A window on whole pixels at 1:1 is the frame's pixels, bit for bit, inside and out."""
    img = random_image(np.random.default_rng(3), 40, 50)
    for impl in ("cython", "python"):
        with using(impl):
            out = fastpath.crop_resize(img, 20.0, 15.0, 16.0, 10.0, 16, 10, border=(1, 2, 3))
            assert np.array_equal(out[0], img[10:20, 12:28].transpose(2, 0, 1).astype(np.float32))
            edge = fastpath.crop_resize(img, 2.0, 2.0, 8.0, 8.0, 8, 8, border=(1, 2, 3))
            assert np.array_equal(edge[0, :, 2:, 2:], img[:6, :6].transpose(2, 0, 1).astype(np.float32))
            assert (edge[0, :, :2, :] == np.array([1, 2, 3], np.float32)[:, None, None]).all()


def test_crop_default_border_is_frame_mean() -> None:
    img = random_image(np.random.default_rng(5), 20, 30)
    with using("cython"):
        out = fastpath.crop_resize(img, -100, -100, 10, 10, 4, 4)  # entirely outside
    mean = img.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(out[0, :, 0, 0], mean, rtol=1e-5)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((4, 4), np.uint8), 1, 1, 2, 2, 4, 4), "HxWx3"),
        ((np.zeros((4, 4, 3), np.uint8), 1, 1, 0, 2, 4, 4), "> 0"),
        ((np.zeros((4, 4, 3), np.uint8), float("inf"), 1, 2, 2, 4, 4), "finite"),
        ((np.zeros((4, 4, 3), np.uint8), 1, 1, 2, 2, 0, 4), "positive integer"),
    ],
)
def test_crop_validation(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fastpath.crop_resize(*args)  # type: ignore[arg-type]


def _face_matrix(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    # a plausible face: template scaled ×2.5, rotated, shifted, with landmark noise
    ang = rng.uniform(-0.5, 0.5)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    src = ARCFACE @ rot.T * rng.uniform(0.5, 3.0) + rng.uniform(0, 300, 2)
    src += rng.normal(0, 1.0, src.shape)
    m, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), ARCFACE, method=cv2.LMEDS)
    assert m is not None
    return np.asarray(m, dtype=np.float64)


@pytest.mark.parametrize("rel", REAL_IMAGES)
def test_warp_matches_opencv(eval_dir: Path, rel: str, simd: str) -> None:
    img = read_image(eval_dir, rel)
    rng = np.random.default_rng(7)
    for _ in range(5):
        m = _face_matrix(rng)
        cy_, py_ = both(fastpath.warp_affine_chw, img, m, 112, 112, swap_rb=True, border=(0, 0, 0))
        diff = np.abs(cy_ - py_)
        assert diff.max() <= 4.0 and diff.mean() <= 0.5, (diff.max(), diff.mean())


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), out=st.integers(1, 32),
    seed=st.integers(0, 2**32 - 1), border=st.integers(0, 255),
)  # fmt: skip
def test_warp_parity_random(h: int, w: int, out: int, seed: int, border: int) -> None:
    rng = np.random.default_rng(seed)
    img = random_image(rng, h, w)
    ang, s = rng.uniform(-3, 3), rng.uniform(0.3, 3)
    m = np.array(
        [[s * np.cos(ang), -s * np.sin(ang), rng.uniform(-20, 20)],
         [s * np.sin(ang), s * np.cos(ang), rng.uniform(-20, 20)]]
    )  # fmt: skip
    cy_, py_ = both(fastpath.warp_affine_chw, img, m, out, out, mean=127.5, scale=1 / 128, border=border)
    # random noise images have the strongest possible edges: allow 8 grey levels at the edge
    # pixels (OpenCV's 1/32 px position grid), still ≤ 0.75 mean
    diff = np.abs(cy_ - py_) * 128
    assert diff.max() <= 8.0 and diff.mean() <= 0.75, (diff.max(), diff.mean())


def test_warp_identity_is_exact() -> None:
    img = random_image(np.random.default_rng(3), 16, 16)
    m = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    cy_, py_ = both(fastpath.warp_affine_chw, img, m, 16, 16)
    np.testing.assert_array_equal(cy_, py_)
    np.testing.assert_array_equal(cy_[0], img.transpose(2, 0, 1).astype(np.float32))


@pytest.mark.parametrize(
    ("m", "match"),
    [
        (np.zeros((3, 3)), "2x3"),
        (np.zeros((2, 3)), "singular"),
        (np.full((2, 3), np.nan), "finite"),
    ],
)
def test_warp_validation(m: npt.NDArray[np.float64], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fastpath.warp_affine_chw(np.zeros((4, 4, 3), np.uint8), m, 8, 8)
