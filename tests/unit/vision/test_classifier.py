"""Self-learning classifier on real features (MobileNetV2, real photos and COIL-20 views)."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.errors import CommandError
from agent.models import load_manifest
from agent.vision.class_policy import ClassPolicy
from agent.vision.classifier import (
    UNKNOWN_ID,
    UNKNOWN_LABEL,
    SelfLearnClassifier,
    default_max_distance,
)
from agent.vision.features import FeatureExtractor
from agent.vision.runtime import OnnxModel

PHOTOS = ("motorcycle_left.png", "motorcycle_right.png", "chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")


@pytest.fixture(scope="module")
def extractor(models_dir: Path) -> FeatureExtractor:
    return FeatureExtractor(OnnxModel(load_manifest().get("mobilenet_v2"), models_dir))


@pytest.fixture(scope="module")
def photos(eval_dir: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in PHOTOS:
        img = cv2.imread(str(eval_dir / "images" / name))
        assert img is not None, name
        out[name.split(".")[0]] = img
    return out


@pytest.fixture(scope="module")
def photo_feats(extractor: FeatureExtractor, photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = list(photos)
    feats = extractor.extract_batch([photos[n] for n in names])
    return dict(zip(names, feats, strict=True))


def _coil(eval_dir: Path, obj: int, view: int) -> np.ndarray:
    grey = cv2.imread(str(eval_dir / "fewshot" / "coil20" / f"obj{obj}__{view}.png"), cv2.IMREAD_GRAYSCALE)
    assert grey is not None, (obj, view)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


# ----------------------------------------------------------------------------- extraction


def test_extract_shape_dtype_and_determinism(extractor: FeatureExtractor, photos: dict[str, np.ndarray]) -> None:
    a = extractor.extract(photos["chelsea"])
    b = extractor.extract(photos["chelsea"])
    assert a.shape == (1280,) and a.dtype == np.float32
    assert np.isfinite(a).all() and np.linalg.norm(a) > 1.0
    np.testing.assert_array_equal(a, b)
    batch = extractor.extract_batch([photos["chelsea"], photos["coffee"]])
    assert batch.shape == (2, 1280)
    np.testing.assert_allclose(batch[0], a, rtol=1e-4, atol=1e-4)


def test_extract_box_crops_and_rejects_empty(extractor: FeatureExtractor, photos: dict[str, np.ndarray]) -> None:
    img = photos["astronaut"]
    h, w = img.shape[:2]
    full = extractor.extract(img, (0, 0, w, h))
    np.testing.assert_allclose(full, extractor.extract(img), rtol=1e-5, atol=1e-5)
    # A box reaching out of the frame is clipped to it.
    np.testing.assert_allclose(extractor.extract(img, (-50, -50, w + 100, h + 100)), full, rtol=1e-5, atol=1e-5)
    part = extractor.extract(img, (10, 10, w // 3, h // 3))
    assert np.linalg.norm(part - full) > 1.0
    for bad in ((w + 10, 0, 20, 20), (0, 0, 0, 10), (5, 5, -3, 4)):
        with pytest.raises(CommandError) as err:
            extractor.extract(img, bad)
        assert err.value.code == "bad_request"


def test_motorcycles_closer_than_unrelated(photo_feats: dict[str, np.ndarray]) -> None:
    names = list(photo_feats)
    d = {(a, b): float(np.linalg.norm(photo_feats[a] - photo_feats[b])) for a in names for b in names if a < b}
    moto = d[("motorcycle_left", "motorcycle_right")]
    others = [v for k, v in d.items() if k != ("motorcycle_left", "motorcycle_right")]
    assert moto < 10.0 < min(others), (moto, min(others))
    # And the default threshold sits between them.
    assert moto < default_max_distance("mobilenet_v2") < min(others)


# ----------------------------------------------------------------------------- classify


@pytest.fixture
def clf(photo_feats: dict[str, np.ndarray]) -> SelfLearnClassifier:
    c = SelfLearnClassifier(1280, max_distance=default_max_distance("mobilenet_v2"))
    for name in ("motorcycle_left", "chelsea", "coffee", "astronaut"):
        c.add_class(name, photo_feats[name])
    return c


def test_ranking_complete_ascending_l2(clf: SelfLearnClassifier, photo_feats: dict[str, np.ndarray]) -> None:
    q = photo_feats["motorcycle_right"]
    res = clf.classify(q)
    assert [cid for cid, _ in res.ranking] != [] and sorted(cid for cid, _ in res.ranking) == [0, 1, 2, 3]
    dists = [d for _, d in res.ranking]
    assert dists == sorted(dists)
    for cid, dist in res.ranking:  # plain L2 on raw features, as MaixPy
        assert dist == pytest.approx(float(np.linalg.norm(q - photo_feats[clf.labels[cid]])), rel=1e-4)
    assert res.label == "motorcycle_left" and res.class_id == 0
    assert res.distance == dists[0] and 0.5 < res.score <= 1.0
    out = res.to_result()
    assert set(out) == {"label", "class_id", "distance", "score", "similarity", "ranking"}
    assert out["ranking"][0] == [0, dists[0]] and isinstance(out["ranking"][0][1], float)


def test_score_monotone_and_half_at_threshold(clf: SelfLearnClassifier) -> None:
    scores = [clf.score(d) for d in np.linspace(0, 3 * clf.max_distance, 50)]
    assert all(a >= b for a, b in itertools.pairwise(scores))
    assert clf.score(clf.max_distance) == pytest.approx(0.5)
    assert 0.0 <= scores[-1] < 0.01 and scores[0] > 0.99


@pytest.mark.parametrize("max_distance", [5e-324, 1e-300, 1e300, 1.7e308])
def test_score_of_extreme_thresholds(max_distance: float) -> None:
    """Any positive max_distance that thresholds/set accepts scores without raising (the fuzz
    session found a subnormal one dividing by zero)."""
    clf = SelfLearnClassifier(max_distance=max_distance)
    for d in (0.0, 1e-320, 1.0, 14.0, 1e308):
        assert 0.0 <= clf.score(d) <= 1.0


def test_unknown_beyond_max_distance(clf: SelfLearnClassifier, photo_feats: dict[str, np.ndarray]) -> None:
    clf.policy = ClassPolicy("max_distance", clf.max_distance)
    res = clf.classify(photo_feats["rocket"])  # not enrolled
    assert res.label == UNKNOWN_LABEL and res.class_id == UNKNOWN_ID
    assert res.distance is not None and res.distance > clf.max_distance and res.score < 0.5
    assert len(res.ranking) == 4  # the ranking is still complete
    clf.max_distance = 100.0
    assert clf.classify(photo_feats["rocket"]).label != UNKNOWN_LABEL
    empty = SelfLearnClassifier().classify(photo_feats["rocket"])
    assert empty.label == UNKNOWN_LABEL and empty.ranking == [] and empty.distance is None


def test_policies_share_the_ranking(clf: SelfLearnClassifier, photo_feats: dict[str, np.ndarray]) -> None:
    """Every policy reports MaixPy's raw-L2 ranking unchanged; only label, class_id, score differ."""
    out = {}
    for policy in ("similarity", "max_distance", "maixpy"):
        clf.policy = ClassPolicy(policy)
        out[policy] = clf.classify(photo_feats["rocket"])
    assert out["similarity"].ranking == out["max_distance"].ranking == out["maixpy"].ranking
    assert out["maixpy"].class_id == out["maixpy"].ranking[0][0]  # MaixPy: always the first, never unknown
    assert out["max_distance"].label == UNKNOWN_LABEL
    assert out["similarity"].similarity is not None and -1.0 <= out["similarity"].similarity <= 1.0


def test_several_views_per_class(photo_feats: dict[str, np.ndarray]) -> None:
    c = SelfLearnClassifier(1280)
    assert c.add_class("vehicle", photo_feats["motorcycle_left"]) == 0
    assert c.add_class("cat", photo_feats["chelsea"]) == 1
    assert c.add_class("vehicle", photo_feats["rocket"]) == 0  # one more view, same class
    assert c.labels == ["vehicle", "cat"] and c.view_counts() == [2, 1]
    # The class distance is the nearest view: the rocket view answers for the rocket.
    res = c.classify(photo_feats["rocket"])
    assert res.label == "vehicle" and res.distance == pytest.approx(0.0, abs=1e-3)
    labels, feats = c.class_features()
    assert labels == ["vehicle", "cat"] and feats.shape == (2, 1280)
    np.testing.assert_allclose(feats[0], (photo_feats["motorcycle_left"] + photo_feats["rocket"]) / 2, rtol=1e-5)


def test_remove_and_clear(clf: SelfLearnClassifier, photo_feats: dict[str, np.ndarray]) -> None:
    assert clf.remove_class("chelsea") == 1
    assert clf.labels == ["motorcycle_left", "coffee", "astronaut"]
    res = clf.classify(photo_feats["coffee"])
    assert res.class_id == 1 and res.label == "coffee" and len(res.ranking) == 3
    with pytest.raises(KeyError):
        clf.remove_class("chelsea")
    clf.add_sample(photo_feats["rocket"])
    clf.clear()
    assert clf.class_num() == 0 and clf.sample_num() == 0
    assert clf.class_features()[1].shape == (0, 1280) and clf.sample_features().shape == (0, 1280)
    with pytest.raises(ValueError):
        clf.add_class("x", np.zeros(10, np.float32))  # the feature length stays fixed


# ----------------------------------------------------------------------------- learn


def test_learn_moves_centres_toward_samples(eval_dir: Path, extractor: FeatureExtractor) -> None:
    objs = (1, 3, 5)
    support = extractor.extract_batch([_coil(eval_dir, o, 0) for o in objs])
    samples = extractor.extract_batch([_coil(eval_dir, o, v) for o in objs for v in (2, 4, 6, 8)])
    sample_obj = np.repeat(np.arange(len(objs)), 4)
    c = SelfLearnClassifier(1280)
    assert c.learn() == 0  # no classes, no samples
    for i, o in enumerate(objs):
        c.add_class(f"obj{o}", support[i])
    assert c.learn() == 0  # no samples: nothing to learn
    before = c.class_features()[1]
    for row in samples:
        c.add_sample(row)
    epochs = c.learn()
    assert epochs > 0
    after = c.class_features()[1]
    assign = c.assignments()
    assert (assign >= 0).sum() >= 8 and ((assign == sample_obj) | (assign < 0)).all()
    for k in range(len(objs)):
        mine = samples[assign == k]
        if len(mine):
            mean = mine.mean(0)
            assert np.linalg.norm(after[k] - mean) < np.linalg.norm(before[k] - mean)
    assert any(c.learned())
    assert c.learn() == 0  # idempotent: already learned
    # Views are untouched, so the state round-trips and learning is reproducible.
    restored = SelfLearnClassifier.from_state(c.state())
    np.testing.assert_allclose(restored.class_features()[1], after, rtol=1e-6)
    assert restored.learn() == 0
    np.testing.assert_array_equal(restored.views("obj1")[0], support[0])


def test_coil20_one_shot_episode(eval_dir: Path, extractor: FeatureExtractor) -> None:
    """20-way 1-shot: one random view per object enrolled, 10 other views each classified."""
    rng = np.random.default_rng(0)
    support: list[np.ndarray] = []
    queries: list[np.ndarray] = []
    truth: list[int] = []
    for obj in range(1, 21):
        v = int(rng.integers(50))
        support.append(_coil(eval_dir, obj, v))
        for q in range(2, 50, 5):
            if q != v:
                queries.append(_coil(eval_dir, obj, q))
                truth.append(obj - 1)
    feats = extractor.extract_batch(support + queries)
    c = SelfLearnClassifier(1280)
    for obj in range(20):
        c.add_class(f"obj{obj + 1}", feats[obj])
    pred = [r.ranking[0][0] for r in c.classify_batch(feats[20:])]
    acc = float(np.mean(np.asarray(pred) == np.asarray(truth)))
    assert acc >= 0.8, acc


def test_remove_class_after_learn_shifts_assignments(photo_feats: dict[str, np.ndarray]) -> None:
    c = SelfLearnClassifier(1280)
    for name in ("chelsea", "motorcycle_left", "coffee"):
        c.add_class(name, photo_feats[name])
    c.add_sample(photo_feats["motorcycle_right"])
    c.add_sample(photo_feats["rocket"])  # unrelated: "none" outweighs every class
    assert c.learn() > 0
    assert c.assignments().tolist() == [1, UNKNOWN_ID]
    assert c.learned() == [False, True, False]
    c.remove_class("chelsea")
    assert c.assignments().tolist() == [0, UNKNOWN_ID] and c.learned() == [True, False]
    c.remove_class("motorcycle_left")
    assert c.assignments().tolist() == [UNKNOWN_ID, UNKNOWN_ID]
    c.remove_sample(0)
    assert c.sample_num() == 1
    with pytest.raises(ValueError):
        SelfLearnClassifier.from_state({**c.state(), "view_class": np.asarray([5], np.int32)})
