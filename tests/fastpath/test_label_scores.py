"""label_scores: the Cython kernel against the NumPy reference (the spec).

Tolerances: with unit rows and a unit embedding (D <= 300) the scores agree within 1e-6 absolute
(the kernel sums each dot product in its own SIMD order, BLAS in another); ``best`` may differ
only between scores that close, and ``lead`` then agrees within 2e-6. Each implementation's
``best``, ``similarity`` and ``lead`` are exactly ``np.argmax``, the score there and ``lead_of``
over its *own* scores (ties and NaN included).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpath
from tests.fastpath import both, unaligned, using

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Ranked = tuple[F32, int, float, float | None]


def unit_rows(rng: np.random.Generator, n: int, d: int) -> F32:
    v = rng.normal(size=(n, d))
    unit: F32 = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return unit


def bank_of(sizes: list[int], rng: np.random.Generator, d: int) -> tuple[F32, I64]:
    """Unit rows for labels of these sizes, grouped, and where each label starts."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
    return unit_rows(rng, sum(sizes), d), starts


def own_ranking(scores: F32) -> tuple[int, float | None]:
    """``np.argmax`` and ``decide``'s ``lead_of`` over these scores: what best and lead must be."""
    if scores.size == 0:
        return -1, None
    best = int(np.argmax(scores))
    if scores.size < 2:
        return best, None
    second, first = np.partition(scores, scores.size - 2)[-2:]
    return best, float(scores[best] - (second if scores[best] >= first else first))


def same(a: float | None, b: float | None) -> bool:
    return a is b is None or (a is not None and b is not None and (a == b or (math.isnan(a) and math.isnan(b))))


def check(got: Ranked, nl: int) -> None:
    """Shape, type, and best / similarity / lead consistent with the scores returned."""
    scores, best, similarity, lead = got
    assert type(scores) is np.ndarray and scores.dtype == np.float32 and scores.shape == (nl,)
    assert type(best) is int and type(similarity) is float and (lead is None or type(lead) is float)
    want_best, want_lead = own_ranking(scores)
    assert best == want_best and same(lead, want_lead), (best, lead, want_best, want_lead)
    assert same(similarity, float(scores[best]) if nl else 0.0)


def check_pair(cy: Ranked, py: Ranked, nl: int) -> None:
    check(cy, nl)
    check(py, nl)
    np.testing.assert_allclose(cy[0], py[0], rtol=0, atol=1e-6)
    if cy[1] != py[1]:  # only a near-tie may rank differently
        assert abs(float(cy[0][cy[1]]) - float(cy[0][py[1]])) <= 2e-6
    elif cy[3] is not None and py[3] is not None:
        assert cy[3] == pytest.approx(py[3], abs=2e-6)


@settings(max_examples=120, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=0, max_size=40),
    d=st.integers(1, 300),
    ties=st.integers(0, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_parity_random(sizes: list[int], d: int, ties: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    grouped, starts = bank_of(sizes, rng, d)
    n = grouped.shape[0]
    q = unit_rows(rng, 1, d)[0]
    if n:
        q = (0.6 * grouped[rng.integers(0, n)] + 0.4 * q).astype(np.float32)  # near some sample
        q /= np.float32(np.linalg.norm(q))
        for _ in range(ties if n > 1 else 0):  # copies of one row in other labels: exact ties
            grouped[rng.integers(0, n)] = grouped[rng.integers(0, n)]
    check_pair(*both(fastpath.label_scores, grouped, starts, q), len(sizes))


@pytest.mark.parametrize("d", [1, 7, 8, 9, 16, 17, 128, 130])
@pytest.mark.parametrize("sizes", [[1], [3, 1, 2], [255, 2], [200, 112, 1, 300], [1] * 600])
def test_parity_every_simd_level(sizes: list[int], d: int, simd: str) -> None:
    # around the SIMD widths (8 float lanes, 2 x 8 per step) and labels across the 256-row blocks
    rng = np.random.default_rng(len(sizes) * 1000 + d)
    grouped, starts = bank_of(sizes, rng, d)
    q = unit_rows(rng, 1, d)[0]
    check_pair(*both(fastpath.label_scores, grouped, starts, q), len(sizes))


def test_meaning() -> None:
    """Scores are 0.5 + 0.5 * the best cosine of each label's rows; the best and its lead."""
    grouped = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0], [0.8, 0.6]], np.float32)
    starts = np.array([0, 2, 3], np.int64)  # a: rows 0-1, b: row 2, c: rows 3-4
    q = np.array([0.8, 0.6], np.float32)
    for impl in ("cython", "python"):
        with using(impl):
            scores, best, similarity, lead = fastpath.label_scores(grouped, starts, q)
        # a: max(0.8, 0.6), b: 0.96, c: max(-0.8, 1.0)
        np.testing.assert_allclose(scores, [0.9, 0.98, 1.0], atol=1e-7)
        assert best == 2 and similarity == float(scores[2]) and lead == pytest.approx(0.02, abs=1e-7)


def test_ties_pick_the_first_label() -> None:
    rng = np.random.default_rng(3)
    rows = unit_rows(rng, 3, 16)
    q = rows[1].copy()
    # the best row in labels 1 and 3 (and a weaker one around it): lead 0, best label 1
    grouped = np.ascontiguousarray(rows[[0, 1, 2, 0, 1]])
    starts = np.array([0, 1, 3, 4], np.int64)
    for impl in ("cython", "python"):
        with using(impl):
            scores, best, _, lead = fastpath.label_scores(grouped, starts, q)
        assert best == 1 and lead == 0.0 and scores[1] == scores[3]
    # a tie for second place: the lead over it
    grouped = np.ascontiguousarray(rows[[0, 1, 0]])
    for impl in ("cython", "python"):
        with using(impl):
            scores, best, _, lead = fastpath.label_scores(grouped, np.arange(3, dtype=np.int64), q)
        assert best == 1 and lead == float(scores[1] - scores[0]) and scores[0] == scores[2]


def test_nan_embedding_ranks_like_argmax() -> None:
    """A garbage embedding: every score NaN, best 0 (np.argmax's first NaN), lead NaN."""
    rng = np.random.default_rng(4)
    grouped, starts = bank_of([2, 3, 1], rng, 32)
    q = unit_rows(rng, 1, 32)[0]
    q[5] = np.nan
    for got in both(fastpath.label_scores, grouped, starts, q):
        check(got, 3)
        assert np.isnan(got[0]).all() and got[1] == 0 and math.isnan(got[2])
        assert got[3] is not None and math.isnan(got[3])


@pytest.mark.parametrize("nan_rows", [[4], [5], [4, 1], [7, 3]])
def test_nan_row_makes_its_label_nan(nan_rows: list[int]) -> None:
    """Like np.maximum a NaN sticks, before or after a larger value; the first NaN label is best."""
    rng = np.random.default_rng(5)
    grouped, starts = bank_of([2, 2, 2, 2], rng, 24)
    q = grouped[4].copy()  # label 2's first row: its best score 1.0
    for r in nan_rows:
        grouped[r, 3] = np.nan
    cy, py = both(fastpath.label_scores, grouped, starts, q)
    for got in (cy, py):
        check(got, 4)
        nan_labels = sorted({r // 2 for r in nan_rows})
        assert np.flatnonzero(np.isnan(got[0])).tolist() == nan_labels
        assert got[1] == nan_labels[0] and math.isnan(got[2]) and got[3] is not None and math.isnan(got[3])
    np.testing.assert_allclose(cy[0], py[0], rtol=0, atol=1e-6)  # NaN where NaN


def test_infinite_embedding_matches_the_reference() -> None:
    """inf entries: dot products of ±inf or NaN whatever the summation order; so are the scores."""
    rng = np.random.default_rng(6)
    grouped, starts = bank_of([1, 2, 1, 3], rng, 16)
    grouped[2, 0] = 0.0  # 0 * inf: NaN
    q = unit_rows(rng, 1, 16)[0]
    q[0] = np.inf
    cy, py = both(fastpath.label_scores, grouped, starts, q)
    np.testing.assert_array_equal(cy[0], py[0])
    assert cy[1] == py[1] and same(cy[2], py[2]) and same(cy[3], py[3])


def test_empty_and_single_label() -> None:
    q = np.ones(8, np.float32) / np.float32(math.sqrt(8))
    for scores, best, similarity, lead in both(
        fastpath.label_scores, np.zeros((0, 8), np.float32), np.zeros(0, np.int64), q
    ):
        assert scores.shape == (0,) and scores.dtype == np.float32 and (best, similarity, lead) == (-1, 0.0, None)
    rows = unit_rows(np.random.default_rng(7), 3, 8)
    for got in both(fastpath.label_scores, rows, np.zeros(1, np.int64), q):
        check(got, 1)
        assert got[1] == 0 and got[3] is None


def test_embedding_is_converted_when_it_must_be() -> None:
    rng = np.random.default_rng(8)
    grouped, starts = bank_of([2, 1, 3], rng, 12)
    q = unit_rows(rng, 1, 12)[0]
    want = fastpath.label_scores(grouped, starts, q)
    for other in (q.astype(np.float64), q.tolist(), np.repeat(q, 2)[::2], q[None], q.astype(">f4"), unaligned(q)):
        got = fastpath.label_scores(grouped, starts, other)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1:] == want[1:]


@pytest.mark.parametrize(
    ("grouped", "starts", "embedding", "match"),
    [
        (np.zeros((3, 4), np.float64), np.zeros(1, np.int64), np.zeros(4, np.float32), "grouped must be"),
        (np.zeros(4, np.float32), np.zeros(1, np.int64), np.zeros(4, np.float32), "grouped must be"),
        (np.zeros((3, 0), np.float32), np.zeros(1, np.int64), np.zeros(0, np.float32), "grouped must be"),
        (np.zeros((4, 3), np.float32).T, np.zeros(1, np.int64), np.zeros(4, np.float32), "grouped must be"),
        ([[0.0] * 4] * 3, np.zeros(1, np.int64), np.zeros(4, np.float32), "grouped must be"),
        (np.zeros((3, 4), np.float32), np.zeros(1, np.int32), np.zeros(4, np.float32), "starts must be"),
        (np.zeros((3, 4), np.float32), np.zeros((1, 1), np.int64), np.zeros(4, np.float32), "starts must be"),
        (np.zeros((3, 4), np.float32), [0], np.zeros(4, np.float32), "starts must be"),
        (np.zeros((3, 4), np.float32), np.zeros(1, np.int64), np.zeros(5, np.float32), "must hold D = 4 values"),
        (np.zeros((3, 4), np.float32), np.zeros(1, np.int64), np.zeros((2, 4), np.float32), "must hold D = 4"),
        (np.zeros((3, 4), ">f4"), np.zeros(1, np.int64), np.zeros(4, np.float32), "grouped must be"),
        (unaligned(np.zeros((3, 4), np.float32)), np.zeros(1, np.int64), np.zeros(4, np.float32), "grouped must be"),
        (np.zeros((3, 4), np.float32), np.zeros(1, ">i8"), np.zeros(4, np.float32), "starts must be"),
        (np.zeros((3, 4), np.float32), np.zeros(1, np.int64), np.array(["a"] * 4), "embedding must be numeric"),
        (np.zeros((3, 4), np.float32), np.array([1], np.int64), np.zeros(4, np.float32), "starts must begin at 0"),
        (np.zeros((3, 4), np.float32), np.array([0, 2, 2], np.int64), np.zeros(4, np.float32), "increase strictly"),
        (np.zeros((3, 4), np.float32), np.array([0, 2, 1], np.int64), np.zeros(4, np.float32), "increase strictly"),
        (np.zeros((3, 4), np.float32), np.array([0, 3], np.int64), np.zeros(4, np.float32), "below N"),
        (np.zeros((3, 4), np.float32), np.array([0, -1], np.int64), np.zeros(4, np.float32), "increase strictly"),
        (np.zeros((3, 4), np.float32), np.zeros(0, np.int64), np.zeros(4, np.float32), "one non-empty run"),
        (np.zeros((0, 4), np.float32), np.zeros(1, np.int64), np.zeros(4, np.float32), "one non-empty run"),
    ],
)
def test_validation(grouped: object, starts: object, embedding: object, match: str) -> None:
    for impl in ("cython", "python"):
        with using(impl), pytest.raises(ValueError, match=match):
            fastpath.label_scores(grouped, starts, embedding)  # type: ignore[arg-type]
