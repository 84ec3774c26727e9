"""letterbox_chw: Cython vs reference parity, reference vs OpenCV, Transform, validation.

Tolerances: Cython vs reference ≤ 1e-3 grey levels (float32 rounding / FMA contraction only).
Reference vs the OpenCV path (cv2.resize INTER_LINEAR + copyMakeBorder + blobFromImage) ≤ 1 grey
level max and ≤ 0.3 mean: OpenCV rounds the resized image to uint8 with 11-bit fixed-point weights.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpath
from tests.fastpath import REAL_IMAGES, both, random_image, read_image

PARITY_ATOL_GREY = 1e-3
MODES = ("letterbox", "stretch", "cover", "topleft")


def assert_parity(cy: npt.NDArray[np.float32], py: npt.NDArray[np.float32], scale: float) -> None:
    assert cy.shape == py.shape and cy.dtype == py.dtype == np.float32
    np.testing.assert_allclose(cy, py, rtol=0, atol=PARITY_ATOL_GREY * abs(scale) + 1e-7)


def cv2_letterbox(
    img: npt.NDArray[np.uint8], out_h: int, out_w: int, pad: int, swap: bool, scale: float
) -> npt.NDArray[np.float32]:
    """The usual OpenCV three-step path, with the same geometry as the spec."""
    h, w = img.shape[:2]
    r = min(out_w / w, out_h / h)
    nw, nh = min(out_w, max(1, round(w * r))), min(out_h, max(1, round(h * r)))
    px, py = (out_w - nw) // 2, (out_h - nh) // 2
    res = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    res = cv2.copyMakeBorder(res, py, out_h - nh - py, px, out_w - nw - px, cv2.BORDER_CONSTANT, value=(pad,) * 3)
    return np.asarray(cv2.dnn.blobFromImage(res, scale, swapRB=swap), dtype=np.float32)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 48),
    w=st.integers(1, 48),
    out_h=st.integers(1, 40),
    out_w=st.integers(1, 40),
    mode=st.sampled_from(MODES),
    interpolation=st.sampled_from(["linear", "area"]),
    swap=st.booleans(),
    mean=st.one_of(st.just(0.0), st.tuples(*[st.floats(0, 255)] * 3)),
    scale=st.sampled_from([1.0, 1 / 255, 1 / 128, -2.0]),
    pad=st.integers(0, 255),
    seed=st.integers(0, 2**32 - 1),
)
def test_parity_random(
    h: int, w: int, out_h: int, out_w: int, mode: str, interpolation: str, swap: bool,
    mean: float | tuple[float, float, float], scale: float, pad: int, seed: int,
) -> None:  # fmt: skip
    img = random_image(np.random.default_rng(seed), h, w)
    kw = {"mode": mode, "swap_rb": swap, "mean": mean, "scale": scale, "pad": pad, "interpolation": interpolation}
    (cy, tr_cy), (py, tr_py) = both(fastpath.letterbox_chw, img, out_h, out_w, **kw)
    assert tr_cy == tr_py
    assert cy.shape == (1, 3, out_h, out_w)
    assert_parity(cy, py, scale)


# the level is set once per test by the fixture, the same for every example
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 70),
    swap=st.booleans(),
    mean=st.one_of(st.just(0.0), st.tuples(*[st.floats(0, 255)] * 3)),
    scale=st.sampled_from([1.0, 1 / 255, -2.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_parity_copy(
    h: int, w: int, swap: bool, mean: float | tuple[float, float, float], scale: float, seed: int, simd: str
) -> None:
    """The 1:1 conversion (a frame already at the input size) at every SIMD level: widths across
    the 8- and 16-pixel steps and their scalar tails."""
    img = random_image(np.random.default_rng(seed), h, w)
    assert fastpath.resample_kind((h, w), h, w, "topleft") == "copy"
    kw = {"mode": "topleft", "swap_rb": swap, "mean": mean, "scale": scale}
    (cy, _), (py, _) = both(fastpath.letterbox_chw, img, h, w, **kw)
    assert_parity(cy, py, scale)


@pytest.mark.parametrize(
    ("h", "w", "out_h", "out_w"),
    [(1, 1, 1, 1), (1, 1, 7, 5), (3, 1, 9, 9), (480, 640, 320, 320), (479, 641, 321, 255),
     (100, 37, 64, 64), (5, 1000, 32, 48), (480, 640, 480, 640), (240, 322, 120, 161), (17, 33, 40, 40)],
)  # fmt: skip
@pytest.mark.parametrize("mode", MODES)
def test_parity_fixed_shapes(h: int, w: int, out_h: int, out_w: int, mode: str, simd: str) -> None:
    img = random_image(np.random.default_rng(h * 1000 + w), h, w)
    (cy, _), (py, _) = both(fastpath.letterbox_chw, img, out_h, out_w, mode=mode, swap_rb=True, scale=1 / 255)
    assert_parity(cy, py, 1 / 255)


@pytest.mark.parametrize("rel", REAL_IMAGES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("interpolation", ["linear", "area"])
def test_parity_real_images(eval_dir: Path, rel: str, mode: str, interpolation: str, simd: str) -> None:
    img = read_image(eval_dir, rel)
    for out_h, out_w in ((320, 320), (224, 224), (240, 320)):
        (cy, _), (py, _) = both(
            fastpath.letterbox_chw, img, out_h, out_w, mode=mode, mean=(127, 127, 127),
            scale=1 / 128, swap_rb=True, interpolation=interpolation,
        )  # fmt: skip
        assert_parity(cy, py, 1 / 128)


@pytest.mark.parametrize("rel", REAL_IMAGES)
@pytest.mark.parametrize(("out_h", "out_w"), [(320, 320), (640, 640), (240, 320), (97, 131)])
def test_matches_opencv_path(eval_dir: Path, rel: str, out_h: int, out_w: int) -> None:
    img = read_image(eval_dir, rel)
    want = cv2_letterbox(img, out_h, out_w, 114, True, 1.0)
    for impl in ("cython", "python"):
        fastpath.set_implementation(impl)
        try:
            got, _ = fastpath.letterbox_chw(img, out_h, out_w, swap_rb=True)
        finally:
            fastpath.set_implementation("auto")
        diff = np.abs(got - want)
        assert diff.max() <= 1.0, (impl, diff.max())
        assert diff.mean() <= 0.3, (impl, diff.mean())


def test_pad_mean_scale_and_swap() -> None:
    img = np.zeros((10, 20, 3), np.uint8)
    img[..., 0] = 10  # B
    img[..., 2] = 200  # R
    for impl in ("cython", "python"):
        fastpath.set_implementation(impl)
        try:
            out, tr = fastpath.letterbox_chw(
                img, 20, 20, swap_rb=True, mean=(1.0, 2.0, 3.0), scale=(0.5, 1.0, 2.0),
                pad=(30, 60, 90),
            )  # fmt: skip
        finally:
            fastpath.set_implementation("auto")
        assert (tr.pad_x, tr.pad_y) == (0.0, 5.0)
        # region: RGB = (200, 0, 10)
        np.testing.assert_allclose(out[0, :, 10, 10], [(200 - 1) * 0.5, -2.0, (10 - 3) * 2.0])
        # border: pad is in source (BGR) order, so RGB = (90, 60, 30)
        np.testing.assert_allclose(out[0, :, 0, 0], [(90 - 1) * 0.5, 58.0, (30 - 3) * 2.0])


def test_out_buffer_reused() -> None:
    img = random_image(np.random.default_rng(1), 48, 64)
    buf = np.full((1, 3, 32, 32), np.nan, np.float32)
    out, _ = fastpath.letterbox_chw(img, 32, 32, out=buf)
    assert out is buf
    assert np.isfinite(buf).all()


@pytest.mark.parametrize(
    ("h", "w", "mode", "expect"),
    [
        (480, 640, "letterbox", (0.5, 0.5, 0.0, 40.0)),
        (480, 640, "stretch", (0.5, 2 / 3, 0.0, 0.0)),
        (480, 640, "cover", (2 / 3, 2 / 3, -80 * 2 / 3, 0.0)),
    ],
)
def test_transform_geometry(h: int, w: int, mode: str, expect: tuple[float, float, float, float]) -> None:
    img = np.zeros((h, w, 3), np.uint8)
    _, tr = fastpath.letterbox_chw(img, 320, 320, mode=mode)  # type: ignore[arg-type]
    np.testing.assert_allclose((tr.scale_x, tr.scale_y, tr.pad_x, tr.pad_y), expect)


def test_transform_round_trip() -> None:
    img = np.zeros((480, 640, 3), np.uint8)
    _, tr = fastpath.letterbox_chw(img, 320, 320)
    boxes = np.array([[0, 40, 320, 280], [10, 50, 20, 60]], np.float32)
    frame = tr.to_frame(boxes)
    np.testing.assert_allclose(frame[0], [0, 0, 640, 480])
    np.testing.assert_allclose(tr.to_model(frame), boxes, atol=1e-4)
    pts = tr.to_frame(np.array([[-10.0, 0.0]]), clip=True)
    np.testing.assert_allclose(pts, [[0, 0]])
    lm = tr.to_frame(np.zeros((3, 10)))
    assert lm.shape == (3, 10)
    with pytest.raises(ValueError, match="even-sized"):
        tr.to_frame(np.zeros((2, 3)))


def test_letterbox_content_lands_where_transform_says() -> None:
    # a white square in the frame maps to the region Transform.to_model predicts
    img = np.zeros((300, 600, 3), np.uint8)
    img[100:200, 200:300] = 255
    out, tr = fastpath.letterbox_chw(img, 256, 256, pad=0)
    x1, y1, x2, y2 = tr.to_model([200, 100, 300, 200])
    inside = out[0, 0, int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2]
    assert inside.min() == 255.0
    assert out[0, 0, : int(y1) - 2].max() == 0.0


@pytest.mark.parametrize(
    ("img", "kwargs", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), {}, "uint8"),
        (np.zeros((4, 4), np.uint8), {}, "HxWx3"),
        (np.zeros((4, 4, 4), np.uint8), {}, "HxWx3"),
        (np.zeros((0, 4, 3), np.uint8), {}, "empty"),
        (np.zeros((4, 8, 3), np.uint8)[:, ::2], {}, "C-contiguous"),
        ([[[0, 0, 0]]], {}, "numpy array"),
        (np.zeros((4, 4, 3), np.uint8), {"mode": "fit"}, "mode"),
        (np.zeros((4, 4, 3), np.uint8), {"interpolation": "cubic"}, "interpolation"),
        (np.zeros((4, 4, 3), np.uint8), {"pad": 300}, "pad"),
        (np.zeros((4, 4, 3), np.uint8), {"mean": (1, 2)}, "mean"),
        (np.zeros((4, 4, 3), np.uint8), {"scale": float("nan")}, "scale"),
        (np.zeros((4, 4, 3), np.uint8), {"out": np.zeros((1, 3, 8, 9), np.float32)}, "shape"),
        (np.zeros((4, 4, 3), np.uint8), {"out": np.zeros((1, 3, 8, 8), np.float64)}, "float32"),
    ],
)
def test_validation(img: object, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fastpath.letterbox_chw(img, 8, 8, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_validation_size(size: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        fastpath.letterbox_chw(np.zeros((4, 4, 3), np.uint8), size, 8)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shape", "out", "mode", "kind"),
    [
        ((480, 640), (320, 320), "letterbox", "half"),  # the segmenter's 640x480 → 320
        ((480, 640), (240, 320), "stretch", "half"),
        ((480, 640), (480, 640), "topleft", "copy"),  # the face detectors at 640x480
        ((224, 224), (224, 224), "cover", "copy"),
        ((480, 640), (224, 224), "cover", "general"),
        ((481, 640), (320, 320), "letterbox", "general"),
    ],
)
def test_special_cases_are_chosen(shape: tuple[int, int], out: tuple[int, int], mode: str, kind: str) -> None:
    assert fastpath.resample_kind(shape, *out, mode) == kind  # type: ignore[arg-type]


@pytest.mark.parametrize("rel", REAL_IMAGES)
@pytest.mark.parametrize(("out_h", "out_w"), [(224, 224), (97, 131), (480, 360)])
def test_area_matches_opencv(eval_dir: Path, rel: str, out_h: int, out_w: int, simd: str) -> None:
    # the spec is OpenCV's INTER_AREA (box filter) when shrinking; OpenCV rounds to uint8
    img = read_image(eval_dir, rel)
    if img.shape[0] < out_h or img.shape[1] < out_w:
        img = np.ascontiguousarray(cv2.resize(img, (out_w * 2 + 7, out_h * 3 + 1)), dtype=np.uint8)
    want = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA).astype(np.float32).transpose(2, 0, 1)
    for impl in ("cython", "python"):
        fastpath.set_implementation(impl)
        try:
            got, _ = fastpath.letterbox_chw(img, out_h, out_w, mode="stretch", interpolation="area")
        finally:
            fastpath.set_implementation("auto")
        assert np.abs(got[0] - want).max() <= 0.5 + 1e-3, impl


def test_area_enlarging_is_linear() -> None:
    img = random_image(np.random.default_rng(4), 20, 30)
    a, _ = fastpath.letterbox_chw(img, 40, 60, mode="stretch", interpolation="area")
    b, _ = fastpath.letterbox_chw(img, 40, 60, mode="stretch")
    np.testing.assert_array_equal(a, b)


def test_topleft_places_the_frame_at_the_corner() -> None:
    img = np.full((100, 200, 3), 200, np.uint8)
    for impl in ("cython", "python"):
        fastpath.set_implementation(impl)
        try:
            out, tr = fastpath.letterbox_chw(img, 64, 64, mode="topleft", pad=0)
        finally:
            fastpath.set_implementation("auto")
        assert (tr.pad_x, tr.pad_y, tr.scale_x) == (0.0, 0.0, 64 / 200)
        assert out[0, :, :32].min() == 200.0 and out[0, :, 32:].max() == 0.0


def test_cached_plan_is_reused_safely() -> None:
    # the hot path (a plan cached for the same arguments) gives the same answer, validates the
    # image layout and the out buffer, and a different image size builds a new plan
    rng = np.random.default_rng(9)
    img = random_image(rng, 48, 64)
    first, tr1 = fastpath.letterbox_chw(img, 32, 32, swap_rb=True, scale=1 / 255)
    again, tr2 = fastpath.letterbox_chw(img, 32, 32, swap_rb=True, scale=1 / 255)
    np.testing.assert_array_equal(first, again)
    assert tr1 is tr2
    with pytest.raises(ValueError, match="C-contiguous"):
        fastpath.letterbox_chw(np.ascontiguousarray(img[:, ::-1])[:, ::-1], 32, 32, swap_rb=True, scale=1 / 255)
    with pytest.raises(ValueError, match="shape"):
        fastpath.letterbox_chw(img, 32, 32, swap_rb=True, scale=1 / 255, out=np.zeros((1, 3, 8, 8), np.float32))
    other, tr3 = fastpath.letterbox_chw(random_image(rng, 24, 64), 32, 32, swap_rb=True, scale=1 / 255)
    assert tr3.scale_x == 0.5 and other.shape == (1, 3, 32, 32)
    (cy, _), (py, _) = both(fastpath.letterbox_chw, img, 32, 32, swap_rb=True, scale=[1 / 255] * 3)
    assert_parity(cy, py, 1 / 255)


def test_kernels_release_the_gil_and_are_thread_safe() -> None:
    # two threads sharing one cached plan produce the same results as one thread
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    imgs = [random_image(rng, 480, 640) for _ in range(4)]
    want = [fastpath.letterbox_chw(im, 320, 320, swap_rb=True)[0] for im in imgs]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda im: fastpath.letterbox_chw(im, 320, 320, swap_rb=True)[0], imgs * 3))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, want[i % 4])
