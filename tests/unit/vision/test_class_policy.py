"""The class policy (label/unknown/score) and learn's weights, on generated features."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.vision.class_policy import (
    ClassPolicy,
    SimilaritySpace,
    distance_score,
    hard_classes,
    learn_weights,
    similarity_score,
    unit_rows,
)
from agent.vision.classifier import UNKNOWN_ID, SelfLearnClassifier

DIM = 8
finite = st.floats(-50, 50, allow_nan=False, width=32)
# no subnormals: halving one underflows to 0, a real feature vector is never that small
nonneg = st.floats(0, 20, allow_nan=False, allow_subnormal=False, width=32)


def features(n: int, elements: st.SearchStrategy[float] = nonneg) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.float32, (n, DIM), elements=elements)


@st.composite
def classes(draw: st.DrawFn) -> list[np.ndarray]:
    n = draw(st.integers(1, 4))
    return [draw(features(draw(st.integers(1, 3)))) for _ in range(n)]


@settings(max_examples=150, deadline=None)
@given(classes(), features(5), st.floats(-1, 1))
def test_similarities_bounded_and_scale_free(views: list[np.ndarray], x: np.ndarray, scale: float) -> None:
    """Similarities lie in [-1, 1] and do not change when a frame's features are scaled."""
    space = SimilaritySpace(views)
    s = space.similarities(x)
    assert s.shape == (5, len(views)) and np.all(np.abs(s) <= 1 + 1e-9)
    k = 0.5 + abs(scale) * 3
    np.testing.assert_allclose(space.similarities(x * k), s, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(classes())
def test_a_view_is_its_own_class_at_similarity_one(views: list[np.ndarray]) -> None:
    """A class with a single non-zero view gives that view similarity 1 (centre = nearest view)."""
    space = SimilaritySpace(views)
    for c, v in enumerate(views):
        if len(v) == 1 and np.linalg.norm(v[0]) > 1e-3:
            assert space.similarities(v)[0, c] == pytest.approx(1.0, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(classes(), features(6), st.floats(-0.5, 1.0))
def test_learn_weights_are_shares(views: list[np.ndarray], samples: np.ndarray, none: float) -> None:
    """Weights are probabilities over the classes and "none": in [0, 1], rows sum to at most 1;
    learn is deterministic; a hard class is the largest share, or -1 when "none" outweighs it."""
    w, rounds = learn_weights(views, samples, none)
    assert w.shape == (6, len(views)) and rounds >= 1
    assert np.all(w >= 0) and np.all(w.sum(1) <= 1 + 1e-9)
    w2, _ = learn_weights(views, samples, none)
    np.testing.assert_array_equal(w, w2)
    hard = hard_classes(w)
    for row, h in zip(w, hard, strict=True):
        if h >= 0:
            assert row[h] == row.max() and row[h] > 1 - row.sum()
        else:
            assert row.max() <= 1 - row.sum()


def test_learn_keeps_far_samples_out_and_takes_close_ones() -> None:
    rng = np.random.default_rng(0)
    a, b = np.eye(DIM)[0] * 10, np.eye(DIM)[1] * 10
    near_a = a + rng.normal(0, 0.5, (4, DIM))
    far = np.eye(DIM)[5] * 10  # orthogonal to both classes: similarity 0
    w, _ = learn_weights([a[None], b[None]], np.vstack([near_a, far]), 0.5)
    assert hard_classes(w).tolist() == [0, 0, 0, 0, -1]
    assert w[4].sum() < 0.01


def test_a_sample_cannot_pull_itself_in() -> None:
    """Leave-one-out: a lone sample just below "none" stays out, however much weight it would
    give itself (it once did: the centre it joined looked more like it)."""
    a = np.array([1.0, 0, 0, 0, 0, 0, 0, 0])
    s = unit_rows(np.array([[1.0, 1.4, 0, 0, 0, 0, 0, 0]]))  # cos to a ≈ 0.58
    none = 0.62
    w, _ = learn_weights([a[None]], s, none)
    assert hard_classes(w).tolist() == [-1]


@settings(max_examples=200, deadline=None)
@given(st.floats(-1, 1), st.floats(-1, 1))
def test_similarity_score_monotone_half_at_threshold(s: float, t: float) -> None:
    assert 0.0 <= similarity_score(s, t) <= 1.0
    assert similarity_score(t, t) == pytest.approx(0.5)
    assert similarity_score(s, t) >= 0.5 if s >= t else similarity_score(s, t) <= 0.5
    assert similarity_score(min(s + 0.01, 1.0), t) >= similarity_score(s, t)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e300), st.floats(5e-324, 1e300))
def test_distance_score_monotone_half_at_threshold(d: float, m: float) -> None:
    assert 0.0 <= distance_score(d, m) <= 1.0
    assert distance_score(d * 2, m) <= distance_score(d, m)


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 6), elements=st.floats(0, 100)),
    st.floats(-1, 1),
    st.floats(0.1, 100),
    st.data(),
)
def test_decide_per_policy(dist: np.ndarray, t: float, md: float, data: st.DataObject) -> None:
    sims = data.draw(arrays(np.float64, dist.shape, elements=st.floats(-1, 1)))
    cid, known, score = ClassPolicy("maixpy", md, t).decide(dist, sims)
    assert cid == int(np.argmin(dist)) and known  # MaixPy: the ranking's first, never unknown
    cid, known, _ = ClassPolicy("max_distance", md, t).decide(dist, sims)
    assert cid == int(np.argmin(dist)) and known == (dist.min() <= md)
    cid, known, score = ClassPolicy("similarity", md, t).decide(dist, sims)
    assert cid == int(np.argmax(sims)) and known == (sims.max() >= t)
    assert (known or score <= 0.5) and (not known or score >= 0.5)


def test_policy_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError, match="policy"):
        ClassPolicy("nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_distance"):
        ClassPolicy(max_distance=0.0)
    with pytest.raises(ValueError, match="min_similarity"):
        ClassPolicy(min_similarity=1.5)


@settings(max_examples=60, deadline=None)
@given(classes(), features(4), st.sampled_from(["similarity", "max_distance", "maixpy"]))
def test_classifier_ranking_is_raw_l2_whatever_the_policy(views: list[np.ndarray], q: np.ndarray, policy: str) -> None:
    """The ranking stays MaixPy's: every class by its raw-L2 distance (min over views), ascending."""
    clf = SelfLearnClassifier(DIM, policy=ClassPolicy(policy))  # type: ignore[arg-type]
    for c, vs in enumerate(views):
        for v in vs:
            clf.add_class(f"c{c}", v)
    for row, res in zip(q, clf.classify_batch(q), strict=True):
        want = [float(np.linalg.norm(row.astype(np.float64) - vs.astype(np.float64), axis=1).min()) for vs in views]
        got = dict(res.ranking)
        assert [d for _, d in res.ranking] == sorted(d for _, d in res.ranking)
        np.testing.assert_allclose([got[c] for c in range(len(views))], want, rtol=1e-5, atol=1e-3)
        if res.class_id != UNKNOWN_ID:
            assert res.label == f"c{res.class_id}"


def test_learn_state_survives_class_and_sample_removal() -> None:
    clf = SelfLearnClassifier(DIM)
    clf.add_class("a", np.eye(DIM)[0] * 10)
    clf.add_class("b", np.eye(DIM)[1] * 10)
    for v in (np.eye(DIM)[0] * 9 + 1, np.eye(DIM)[1] * 9 + 1, np.eye(DIM)[6]):
        clf.add_sample(v)
    assert clf.learn() > 0 and clf.learn() == 0
    assert clf.assignments().tolist() == [0, 1, UNKNOWN_ID]
    restored = SelfLearnClassifier.from_state(clf.state())
    np.testing.assert_allclose(restored.similarities(np.eye(DIM)), clf.similarities(np.eye(DIM)))
    clf.remove_class("a")
    assert clf.assignments().tolist() == [UNKNOWN_ID, 0, UNKNOWN_ID]
    clf.remove_sample(1)
    assert clf.assignments().tolist() == [UNKNOWN_ID, UNKNOWN_ID] and clf.classify(np.eye(DIM)[1]).label == "b"
    clf.clear()
    assert clf.class_num() == 0 and clf.sample_num() == 0
    clf.add_class("c", np.ones(DIM))
    clf.add_sample(np.ones(DIM))
    assert clf.learn() > 0 and clf.assignments().tolist() == [0]
