"""crop_stats: the Cython kernel at every SIMD level against the NumPy reference (exactly: both sum
exact integers and take correctly rounded ratios), and both against the OpenCV/NumPy path the
face quality gate used before (cvtColor + Laplacian + meanStdDev, NumPy max/min spread).

Tolerances against that path: chroma exactly (NumPy's float64 mean of whole numbers is their
correctly rounded ratio too); sharpness to 1e-9 relative, as cv2.meanStdDev squares the root of
``Σl²/n - mean²`` taken in doubles, where the kernel's ``(n·Σl² - (Σl)²) / n²`` is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpath
from fastpath import _reference as ref
from tests.fastpath import ARCFACE, both, using

U8 = npt.NDArray[np.uint8]
SIMD_LEVELS = ("avx2", "sse2", "c")
SHARP_RTOL = 1e-9

# (dataset folder, identities, images each) from faces_open: colour LFW (deep-funnelled, face at
# the centre), grey Yale B (tight crops), colour Essex (controlled)
FACE_SETS = (("lfw_deepfunneled", 8, 2), ("extended_yaleb_cropped", 3, 2), ("essex_faces94_female", 3, 2))
LFW_POINTS = np.array([[105, 115], [145, 115], [125, 140], [108, 160], [142, 160]], np.float32)


def opencv_stats(img: U8) -> tuple[float, float]:
    """The face quality gate's measures before crop_stats: cv2 for sharpness, NumPy for chroma."""
    img = np.ascontiguousarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    _, sd = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F))
    if img.ndim == 2:
        return float(sd[0, 0]) ** 2, 0.0
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    spread = np.maximum(np.maximum(b, g), r) - np.minimum(np.minimum(b, g), r)
    return float(sd[0, 0]) ** 2, float(spread.mean())


@contextmanager
def simd_level(name: str) -> Iterator[None]:
    fastpath.set_implementation("auto")
    fastpath.set_simd_level(name)
    try:
        yield
    finally:
        fastpath.set_simd_level(None)


def assert_all_agree(img: U8) -> tuple[float, float]:
    """Cython at every SIMD level == reference, exactly; both match the OpenCV path."""
    with using("python"):
        want = fastpath.crop_stats(img)
    for level in SIMD_LEVELS:
        with simd_level(level), using("cython"):
            got = fastpath.crop_stats(img)
        assert got == want, (level, got, want)
        assert all(type(v) is float for v in got)
    sharp, chroma = opencv_stats(img)
    assert want[1] == chroma
    assert want[0] == pytest.approx(sharp, rel=SHARP_RTOL, abs=1e-12)
    return want


def view(base: U8, layout: str, h: int, w: int) -> U8:
    """An h x w (x C) view of ``base`` (big enough) in one of several memory layouts."""
    if layout == "contiguous":
        return np.ascontiguousarray(base[:h, :w])
    if layout == "centre":  # rows and columns cut from a wider image, as a crop's centre is
        return base[2 : 2 + h, 3 : 3 + w]
    if layout == "strided":
        return base[1 : 1 + 2 * h : 2, : 3 * w : 3]
    if layout == "reversed":  # negative row and column strides
        return base[h - 1 :: -1, w - 1 :: -1]
    if layout == "rgb":  # channels reversed: channel stride -1 (a no-op on grey)
        return base[:h, :w, ::-1] if base.ndim == 3 else base[:h, :w]
    if layout == "fortran":
        return np.asfortranarray(base[:h, :w])
    raise AssertionError(layout)


LAYOUTS = ("contiguous", "centre", "strided", "reversed", "rgb", "fortran")


def content(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> U8:
    if kind == "uniform":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "extremes":  # only 0 and 255: the Laplacian reaches ±1020, its int16 limits
        return (rng.integers(0, 2, shape, dtype=np.uint8) * 255).astype(np.uint8)
    if kind == "checker":  # |l| = 1020 nearly everywhere
        yy, xx = np.indices(shape[:2])
        board = ((yy + xx) % 2 * 255).astype(np.uint8)
        return np.repeat(board[..., None], shape[2], axis=2) if len(shape) == 3 else board
    if kind == "flat":
        return np.full(shape, rng.integers(0, 256), np.uint8)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 2.0)  # a face-like range
    return np.asarray(smooth, np.uint8).reshape(shape)


# ----------------------------------------------------------------------------------------------
# The spec's constants against OpenCV
# ----------------------------------------------------------------------------------------------
def test_grey_weights_are_opencvs_on_every_colour() -> None:
    """All 2^24 BGR colours: the reference grey formula is cv2.cvtColor's COLOR_BGR2GRAY."""
    v = np.arange(256, dtype=np.int32)
    g, r = np.meshgrid(v, v, indexing="ij")
    wb, wg, wr = ref.GREY_WEIGHTS
    for b in range(256):
        img = np.stack([np.full_like(g, b), g, r], axis=-1).astype(np.uint8)  # 256 x 256 colours
        want = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        mine = (b * wb + g * wg + r * wr + (1 << (ref.GREY_SHIFT - 1))) >> ref.GREY_SHIFT
        assert np.array_equal(want, mine), b


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 2), (2, 1), (1, 7), (7, 1), (2, 2), (2, 9), (9, 2), (3, 3)])
def test_reflect_101_of_tiny_images_is_opencvs(h: int, w: int) -> None:
    """1- and 2-pixel dimensions: OpenCV reflects a 1-pixel dimension onto itself."""
    rng = np.random.default_rng(h * 100 + w)
    for kind in ("uniform", "extremes", "checker"):
        img = content(rng, kind, (h, w, 3))
        lap = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F).astype(np.int64)
        lap_sum, lap_sq, _ = ref.crop_sums(img)
        assert (lap_sum, lap_sq) == (int(lap.sum()), int((lap * lap).sum()))
        assert_all_agree(img)
        assert_all_agree(img[..., 1])


# ----------------------------------------------------------------------------------------------
# Parity
# ----------------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 72),  # SIMD steps of 8 to 32 pixels, with every tail
    channels=st.sampled_from([3, 3, 1, 0]),  # 0: a 2-D grey image
    kind=st.sampled_from(["uniform", "extremes", "checker", "flat", "smooth"]),
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**32 - 1),
)
def test_parity_random(h: int, w: int, channels: int, kind: str, layout: str, seed: int) -> None:
    shape = (2 * h + 4, 3 * w + 6) + ((channels,) if channels else ())
    base = content(np.random.default_rng(seed), kind, shape)
    img = view(base, layout, h, w)
    assert img.shape[:2] == (h, w)
    assert_all_agree(img)


@pytest.mark.parametrize(
    ("h", "w"), [(112, 112), (82, 80), (1, 1100), (3, 2100), (2, 4500), (60, 1025), (1500, 3)]
)  # fmt: skip
def test_parity_fixed_shapes(h: int, w: int) -> None:
    """A crop, its centre, and rows wider than the kernel's stack scratch (1024) and its int32
    blocks of Laplacian sums (2000 columns)."""
    rng = np.random.default_rng(h * 7919 + w)
    for kind in ("uniform", "extremes", "checker"):
        img = content(rng, kind, (h, w, 3))
        assert_all_agree(img)
        assert_all_agree(img[:, :, 2])


def test_sums_beyond_two_to_the_53() -> None:
    """n·Σl² > 2^53: the kernel's ratio from Python ints (its doubles would round), still equal
    to the reference's; the same image's checkerboard puts |l| at 1020 almost everywhere."""
    img = content(np.random.default_rng(0), "checker", (400, 400, 3))
    img[::7, ::5] = 128
    lap_sum, lap_sq, _ = ref.crop_sums(img)
    n = img.shape[0] * img.shape[1]
    assert n * lap_sq > 2**53
    sharp, chroma = assert_all_agree(img)
    assert sharp == (n * lap_sq - lap_sum * lap_sum) / (n * n) and chroma == 0.0
    assert_all_agree(img[:, :, 0])


def test_known_values() -> None:
    """Hand-computed: a flat image is 0; a 1x3 grey ramp's Laplacian is (2, 0, -2)."""
    for impl in ("cython", "python"):
        with using(impl):
            assert fastpath.crop_stats(np.full((5, 6, 3), 77, np.uint8)) == (0.0, 0.0)
            assert fastpath.crop_stats(np.array([[0, 1, 2]], np.uint8)) == (8 / 3, 0.0)
            px = np.array([[[10, 200, 90]]], np.uint8)  # one pixel: spread 190, Laplacian 0
            assert fastpath.crop_stats(px) == (0.0, 190.0)


# ----------------------------------------------------------------------------------------------
# Real aligned faces
# ----------------------------------------------------------------------------------------------
def _face_crops(eval_dir: Path) -> Iterator[tuple[str, U8]]:
    """112x112 crops warped onto the ArcFace template from faces_open photos: LFW with the
    deep-funnelled face's landmarks, the others with the template spread over the photo."""
    root = eval_dir / "faces_open"
    for folder, people, each in FACE_SETS:
        for person in sorted((root / folder).iterdir())[:people]:
            for path in sorted(person.iterdir())[:each]:
                img = cv2.imread(str(path), cv2.IMREAD_COLOR)
                assert img is not None, path
                h, w = img.shape[:2]
                spread = np.array([w / 112, h / 112], np.float32)
                pts = LFW_POINTS if folder == "lfw_deepfunneled" else ARCFACE * spread
                m, _ = cv2.estimateAffinePartial2D(pts, ARCFACE, method=cv2.LMEDS)
                assert m is not None
                yield path.name, np.asarray(cv2.warpAffine(img, m, (112, 112), flags=cv2.INTER_LINEAR), np.uint8)


def test_parity_real_face_crops(eval_dir: Path) -> None:
    """Each crop, its measured centre (the strided view the quality gate passes) and its grey."""
    seen = 0
    for name, crop in _face_crops(eval_dir):
        centre = crop[18:100, 16:96]
        assert not centre.flags.c_contiguous
        grey = np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), np.uint8)
        for img in (crop, centre, grey[18:100, 16:96]):
            sharp, _ = assert_all_agree(img)
            assert sharp > 0.0, name
        seen += 1
    assert seen == sum(people * each for _, people, each in FACE_SETS)


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("img", "match"),
    [
        ([[1, 2], [3, 4]], "must be a numpy array"),
        (np.zeros((4, 4, 3), np.float32), "must be uint8"),
        (np.zeros((4, 4, 3), np.uint16), "must be uint8"),
        (np.zeros(16, np.uint8), "HxW, HxWx1"),
        (np.zeros((4, 4, 3, 1), np.uint8), "HxW, HxWx1"),
        (np.zeros((4, 4, 2), np.uint8), "HxW, HxWx1"),
        (np.zeros((4, 4, 4), np.uint8), "HxW, HxWx1"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4, 0, 3), np.uint8), "empty"),
        (np.zeros((0, 4), np.uint8), "empty"),
    ],
)
def test_validation(img: object, match: str) -> None:
    for impl in ("cython", "python"):
        with using(impl), pytest.raises(ValueError, match=match):
            fastpath.crop_stats(img)  # type: ignore[arg-type]


def test_read_only_and_grey_forms() -> None:
    """A read-only array is fine; HxW and HxWx1 are the same grey image."""
    img = np.random.default_rng(3).integers(0, 256, (20, 30), dtype=np.uint8)
    img.flags.writeable = False
    cy, py = both(fastpath.crop_stats, img)
    assert cy == py == both(fastpath.crop_stats, img[:, :, None])[0]
