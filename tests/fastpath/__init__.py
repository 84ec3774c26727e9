"""Tests of the fastpath kernels. Helpers shared by the parity tests live here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

import fastpath

T = TypeVar("T")

# Real test images (read with cv2.imread, BGR), relative to the eval directory.
REAL_IMAGES = ("images/bus.jpg", "images/zidane.jpg", "images/chelsea.png")
# The ArcFace 5-point template of a 112x112 aligned face crop (eyes, nose, mouth corners).
ARCFACE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]], np.float32,
)  # fmt: skip


@contextmanager
def using(name: str) -> Iterator[None]:
    """Temporarily switch the fastpath implementation."""
    before = fastpath.implementation()
    fastpath.set_implementation(name)
    try:
        yield
    finally:
        fastpath.set_implementation(before)


def both(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, T]:
    """Run ``fn`` with the Cython kernels and with the reference: ``(cython, python)``."""
    with using("cython"):
        cy = fn(*args, **kwargs)
    with using("python"):
        py = fn(*args, **kwargs)
    return cy, py


def read_image(eval_dir: Path, rel: str) -> npt.NDArray[np.uint8]:
    img = cv2.imread(str(eval_dir / rel), cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {eval_dir / rel}"
    return np.ascontiguousarray(img)


def random_image(rng: np.random.Generator, h: int, w: int) -> npt.NDArray[np.uint8]:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def unaligned(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A copy of ``a`` one byte off float32 alignment (C-contiguous still)."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out: npt.NDArray[np.float32] = np.frombuffer(raw.data, np.float32, a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out
