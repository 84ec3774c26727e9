"""bank_search / make_bank: Cython vs reference, int8 agreement with float32, edge cases.

Tolerances: scores within 1e-4 (cosine) / 1e-4 relative (l2) between implementations for float32
and float16 banks (summation order differs); int8 Cython vs int8 reference within 2e-3 (the Cython
kernel also quantises the query to int16). Indices must agree except between near-ties.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpath
from tests.fastpath import both


def _check_pair(
    cy: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]],
    py: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]],
    atol: float,
) -> None:
    (ci, cs), (pi, ps) = cy, py
    assert ci.dtype == pi.dtype == np.int64 and cs.dtype == ps.dtype == np.float32
    assert ci.shape == pi.shape == cs.shape == ps.shape
    np.testing.assert_allclose(cs, ps, rtol=1e-4, atol=atol)
    # indices may only differ where the scores are (near-)tied
    differ = ci != pi
    np.testing.assert_allclose(cs[differ], ps[differ], rtol=1e-4, atol=atol)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 60),
    d=st.integers(1, 40),
    q=st.integers(1, 4),
    k=st.integers(1, 70),
    dtype=st.sampled_from(["float32", "float16", "int8"]),
    metric=st.sampled_from(["cosine", "l2"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_parity_random(n: int, d: int, q: int, k: int, dtype: str, metric: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, d)).astype(np.float32)
    queries = rng.normal(size=(q, d)).astype(np.float32)
    bank = fastpath.make_bank(vecs, dtype)  # type: ignore[arg-type]
    cy, py = both(fastpath.bank_search, queries, bank, k=k, metric=metric)
    assert cy[0].shape == (q, min(k, n))
    scale = 1.0 if metric == "cosine" else float(np.sqrt(2 * d) + 1)
    _check_pair(cy, py, (2e-3 if dtype == "int8" else 1e-4) * scale)
    if n:
        order = cy[1] if metric == "l2" else -cy[1]
        assert (np.diff(order, axis=1) >= 0).all()  # best first


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_exact_match_found(dtype: str, simd: str) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(500, 128)).astype(np.float32)
    bank = fastpath.make_bank(vecs, dtype)  # type: ignore[arg-type]
    for impl_res in both(fastpath.bank_search, vecs[[3, 77, 499]], bank, k=3, metric="cosine"):
        idx, scores = impl_res
        np.testing.assert_array_equal(idx[:, 0], [3, 77, 499])
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=5e-3)
    for idx, dist in both(fastpath.bank_search, vecs[42], bank, k=2, metric="l2"):
        assert idx.shape == (1, 2) and idx[0, 0] == 42
        assert dist[0, 0] < 0.05 * np.linalg.norm(vecs[42]) and dist[0, 1] > 5


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize(("n", "d"), [(1, 1), (7, 3), (300, 128), (1000, 130), (257, 17)])
def test_parity_every_simd_level(dtype: str, n: int, d: int, simd: str) -> None:
    # sizes around the SIMD widths (16 int8 / 8 float lanes) and the 256-row block
    rng = np.random.default_rng(n * 100 + d)
    vecs = rng.normal(size=(n, d)).astype(np.float32)
    queries = rng.normal(size=(3, d)).astype(np.float32)
    bank = fastpath.make_bank(vecs, dtype)  # type: ignore[arg-type]
    for metric in ("cosine", "l2"):
        cy, py = both(fastpath.bank_search, queries, bank, k=5, metric=metric)
        scale = 1.0 if metric == "cosine" else float(np.sqrt(2 * d) + 1)
        _check_pair(cy, py, (2e-3 if dtype == "int8" else 1e-4) * scale)


def test_int8_top1_agrees_with_float32(simd: str) -> None:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(5000, 128)).astype(np.float32)
    queries = vecs[rng.integers(0, 5000, 300)] + rng.normal(0, 0.5, (300, 128)).astype(np.float32)
    i8 = fastpath.make_bank(vecs, "int8")
    f32 = fastpath.make_bank(vecs, "float32")
    for metric in ("cosine", "l2"):
        a, _ = fastpath.bank_search(queries, i8, metric=metric)
        b, _ = fastpath.bank_search(queries, f32, metric=metric)
        assert (a == b).mean() >= 0.99


def test_l2_is_raw_euclidean() -> None:
    vecs = np.array([[0, 0], [3, 4], [1, 0]], np.float32)
    bank = fastpath.make_bank(vecs)
    for idx, dist in both(fastpath.bank_search, [0.0, 0.0], bank, k=5, metric="l2"):
        np.testing.assert_array_equal(idx, [[0, 2, 1]])
        np.testing.assert_allclose(dist, [[0, 1, 5]], atol=1e-6)


def test_zero_vectors_score_zero_cosine() -> None:
    bank = fastpath.make_bank(np.array([[0, 0], [1, 0]], np.float32), "int8")
    for idx, s in both(fastpath.bank_search, [1.0, 0.0], bank, k=2):
        np.testing.assert_array_equal(idx, [[1, 0]])
        np.testing.assert_allclose(s, [[1, 0]], atol=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_empty_bank(dtype: str) -> None:
    bank = fastpath.make_bank(np.zeros((0, 8), np.float32), dtype)  # type: ignore[arg-type]
    assert len(bank) == 0 and bank.dim == 8
    idx, s = fastpath.bank_search(np.ones(8, np.float32), bank, k=3)
    assert idx.shape == s.shape == (1, 0) and idx.dtype == np.int64 and s.dtype == np.float32


def test_bank_is_immutable() -> None:
    bank = fastpath.make_bank(np.ones((2, 4), np.float32), "int8")
    with pytest.raises(ValueError):
        bank.data[0, 0] = 1


@pytest.mark.parametrize(
    ("vectors", "dtype", "match"),
    [
        (np.zeros(4), "float32", r"\(N, D\)"),
        (np.zeros((2, 0)), "float32", r"\(N, D\)"),
        (np.zeros((2, 2)), "int4", "dtype"),
        (np.full((2, 2), np.inf), "float32", "finite"),
        (np.full((2, 2), 1e6), "float16", "float16 range"),
        (np.array([["a", "b"]]), "float32", "numeric"),
    ],
)
def test_make_bank_validation(vectors: object, dtype: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fastpath.make_bank(vectors, dtype)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "kwargs", "match"),
    [
        (np.zeros(5), {}, "D = 4"),
        (np.zeros((2, 2, 4)), {}, "D = 4"),
        (np.zeros(4), {"k": 0}, "positive integer"),
        (np.zeros(4), {"metric": "dot"}, "metric"),
        (np.full(4, np.nan), {}, "finite"),
    ],
)
def test_search_validation(query: object, kwargs: dict[str, object], match: str) -> None:
    bank = fastpath.make_bank(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match=match):
        fastpath.bank_search(query, bank, **kwargs)  # type: ignore[arg-type]


def test_search_needs_a_bank() -> None:
    with pytest.raises(ValueError, match="make_bank"):
        fastpath.bank_search(np.zeros(4), np.zeros((3, 4)))  # type: ignore[arg-type]
