"""l2_normalise: the Cython kernel against the NumPy reference (the spec).

Tolerance: 1e-6 absolute (entries <= 1; the float32 norm is summed in another order than
np.dot's), exact where it copies (a norm of 0 or NaN) and for the garbage cases (inf, overflow).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpath
from tests.fastpath import both, unaligned, using


@settings(max_examples=80, deadline=None)
@given(d=st.integers(1, 600), scale=st.sampled_from([1e-3, 1.0, 7.0, 1e4]), seed=st.integers(0, 2**32 - 1))
def test_normalise_parity_random(d: int, scale: float, seed: int) -> None:
    x = (np.random.default_rng(seed).normal(size=(1, d)) * scale).astype(np.float32)  # a model's (1, D)
    cy, py = both(fastpath.l2_normalise, x)
    for got in (cy, py):
        assert got.dtype == np.float32 and got.shape == (d,) and got.flags.c_contiguous
        assert float(np.linalg.norm(got.astype(np.float64))) == pytest.approx(1.0, abs=2e-6)
    np.testing.assert_allclose(cy, py, rtol=0, atol=1e-6)


def test_normalise_meaning() -> None:
    """An SFace-sized output: the unit vector along it, a new array."""
    x = np.random.default_rng(9).normal(size=(1, 128)).astype(np.float32)
    for got in both(fastpath.l2_normalise, x):
        np.testing.assert_allclose(got, x[0] / np.linalg.norm(x.astype(np.float64)), rtol=0, atol=1e-6)
        assert not np.shares_memory(got, x)
    np.testing.assert_array_equal(fastpath.l2_normalise([3, 4]), np.array([0.6, 0.8], np.float32))


@pytest.mark.parametrize("bad", ["zero", "nan", "inf", "huge"])
def test_normalise_garbage_like_numpy(bad: str) -> None:
    """Zero and NaN vectors come back as they are (copied); an inf entry or a norm past float32's
    range gives NumPy's x / inf: zeros, NaN where x is inf."""
    x = np.random.default_rng(10).normal(size=(1, 16)).astype(np.float32)
    if bad == "zero":
        x[:] = 0.0
    elif bad == "nan":
        x[0, 3] = np.nan
    elif bad == "inf":
        x[0, 3] = np.inf
    else:
        x *= np.float32(1e20)
    cy, py = both(fastpath.l2_normalise, x)
    np.testing.assert_array_equal(cy, py)
    if bad in ("zero", "nan"):
        np.testing.assert_array_equal(cy, x[0])
        assert not np.shares_memory(cy, x) and not np.shares_memory(py, x)
    else:
        assert np.isnan(cy).sum() == (bad == "inf") and (np.nan_to_num(cy) == 0).all()


def test_normalise_converts_and_validates() -> None:
    x = np.random.default_rng(11).normal(size=(2, 8))
    want = fastpath.l2_normalise(x.astype(np.float32))
    np.testing.assert_allclose(fastpath.l2_normalise(x), want, rtol=0, atol=1e-7)  # float64, flattened
    np.testing.assert_allclose(fastpath.l2_normalise(x.T.tolist()), fastpath.l2_normalise(x.T), rtol=0, atol=0)
    assert fastpath.l2_normalise(np.zeros(0, np.float32)).shape == (0,)
    y = x.astype(np.float32)
    for other in (unaligned(y), y.astype(">f4"), np.asfortranarray(y)):
        np.testing.assert_array_equal(fastpath.l2_normalise(other), want)
    for impl in ("cython", "python"):
        with using(impl), pytest.raises(ValueError, match="x must be numeric"):
            fastpath.l2_normalise(np.array(["a", "b"]))
