"""The open-set decision rule and the quality gate (synthetic scores and crops)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpath
from agent.vision.face_align import align_face
from agent.vision.face_decision import Decision, DecisionRule, confidence_of, decide, rule_on
from agent.vision.face_quality import GREY_CHROMA, Quality, QualityLimits, chroma, measure, sharpness, verdict
from agent.vision.faces import UNKNOWN, BankIndex, FaceTracks, distinct_labels, match
from tests.fastpath import using

RULE = DecisionRule(match=0.70, margin=0.07, margin_grey=0.10)


def test_named_when_above_match_and_ahead_of_the_second() -> None:
    d = decide(np.array([0.60, 0.85, 0.72], np.float32), RULE)
    assert (d.index, d.best, d.quality) == (1, 1, None)
    assert d.similarity == pytest.approx(0.85)


def test_close_second_makes_it_unknown() -> None:
    d = decide(np.array([0.80, 0.76], np.float32), RULE)  # lead 0.04 < margin 0.07
    assert d.index == -1 and d.best == 0 and d.similarity == pytest.approx(0.80)
    assert decide(np.array([0.80, 0.76], np.float32), DecisionRule(0.70, 0.0)).index == 0  # MaixPy


def test_at_or_below_match_is_unknown() -> None:
    assert decide(np.array([0.70, 0.40], np.float32), RULE).index == -1  # strictly above (MaixPy)
    assert decide(np.array([0.7001, 0.40], np.float32), RULE).index == 0


def test_one_identity_has_no_margin() -> None:
    assert decide(np.array([0.75], np.float32), RULE).index == 0
    assert decide(np.array([0.69], np.float32), RULE).index == -1


def test_grey_faces_need_the_grey_margin_never_less_than_margin() -> None:
    scores = np.array([0.80, 0.72], np.float32)  # lead 0.08
    assert decide(scores, RULE, grey=False).index == 0
    assert decide(scores, RULE, grey=True).index == -1
    assert decide(np.array([0.83, 0.72], np.float32), RULE, grey=True).index == 0
    wide = DecisionRule(match=0.70, margin=0.12, margin_grey=0.08)
    assert decide(np.array([0.83, 0.72], np.float32), wide, grey=True).index == -1


def test_quality_reason_makes_it_unknown_with_no_confidence() -> None:
    d = decide(np.array([0.95, 0.40], np.float32), RULE, quality="blurred")
    assert d.index == -1 and d.quality == "blurred" and d.confidence == 0.0
    assert d.similarity == pytest.approx(0.95)  # MaixPy's similarity stays the best score


def test_empty_bank() -> None:
    d = decide(np.zeros(0, np.float32), RULE)
    assert (d.index, d.best, d.similarity, d.confidence) == (-1, -1, 0.0, 0.0)


def test_confidence_is_monotonic_and_bounded() -> None:
    sims = np.linspace(0.4, 1.0, 61)
    conf = [confidence_of(float(s), 0.1) for s in sims]
    assert all(0.0 <= c <= 1.0 for c in conf) and conf == sorted(conf)
    assert confidence_of(0.9, 0.2) > 0.99 and confidence_of(0.6, 0.01) < 0.01
    assert confidence_of(0.75, 0.02) < confidence_of(0.75, 0.15)  # a clear lead is surer
    assert 0.0 < confidence_of(0.72, None) < 1.0
    assert confidence_of(math.nan, 0.1) == confidence_of(0.9, math.nan) == 0.0  # NaN vouches for nothing
    assert confidence_of(1e300, 1e300) == pytest.approx(1.0) and confidence_of(-1e300, 0.0) == pytest.approx(0.0)


def test_match_publishes_confidence_and_quality() -> None:
    rng = np.random.default_rng(1)
    bank = rng.normal(size=(3, 128)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    labels = ["ann", "bob", "cat"]
    m = match(bank[1], bank, labels, RULE)
    assert m.label == "bob" and m.confidence > 0.99 and m.quality is None
    assert m.confidence_of("bob") == pytest.approx(m.confidence) and m.confidence_of("zed") == 0.0
    gated = BankIndex(bank, labels).match(bank[1], RULE, "small")
    assert (gated.label, gated.class_id, gated.quality, gated.confidence) == (UNKNOWN, 0, "small", 0.0)


def test_gate_reasons() -> None:
    limits = QualityLimits(min_eyes=16, min_sharpness=12, min_detect=0.5)
    assert verdict(Quality(40, 100, 0.9), limits) is None
    assert verdict(Quality(10, 100, 0.9), limits) == "small"
    assert verdict(Quality(40, 5, 0.9), limits) == "blurred"
    assert verdict(Quality(40, 100, 0.3), limits) == "weak detection"


def test_blur_and_grey_measures_on_a_real_face(eval_dir: Path) -> None:
    image = cv2.imread(str(eval_dir / "faces_open" / "lfw_deepfunneled" / "Colin_Powell" / "Colin_Powell_0001.jpg"))
    assert image is not None
    # the deep-funneled LFW face sits at the centre: template-like landmarks around it
    points = np.array([[105, 115], [145, 115], [125, 140], [108, 160], [142, 160]], np.float32)
    crop = align_face(image, points)
    sharp = sharpness(crop)
    blurred = cv2.GaussianBlur(crop, (0, 0), 4)
    assert sharp > 12 > sharpness(blurred)
    q = measure(points, 0.99, crop)
    assert q.eyes == pytest.approx(40.0) and not q.grey and chroma(crop) > GREY_CHROMA
    grey = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert measure(points, 0.99, grey).grey and chroma(grey) == 0.0
    assert verdict(measure(points, 0.99, blurred), QualityLimits()) == "blurred"


def _opencv_measures(crop: np.ndarray) -> tuple[float, float]:
    """sharpness and chroma as the gate computed them before fastpath.crop_stats."""
    h, w = crop.shape[:2]
    core = crop[h * 18 // 112 : h * 100 // 112, w * 16 // 112 : w * 96 // 112]
    grey = core if core.ndim == 2 else cv2.cvtColor(core, cv2.COLOR_BGR2GRAY)
    _, sd = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F))
    if core.ndim == 2:
        return float(sd[0, 0]) ** 2, 0.0
    b, g, r = core[..., 0], core[..., 1], core[..., 2]
    spread = np.maximum(np.maximum(b, g), r) - np.minimum(np.minimum(b, g), r)
    return float(sd[0, 0]) ** 2, float(spread.mean())


def test_measures_are_the_opencv_ones(eval_dir: Path) -> None:
    """One fused pass gives what cvtColor + Laplacian + meanStdDev and NumPy's spread gave: real
    crops (colour, grey as 3 channels, grey 2-D, blurred, another size), any fastpath implementation."""
    root = eval_dir / "faces_open" / "lfw_deepfunneled"
    points = np.array([[105, 115], [145, 115], [125, 140], [108, 160], [142, 160]], np.float32)
    crops = []
    for person in sorted(root.iterdir())[:6]:
        image = cv2.imread(str(sorted(person.iterdir())[0]))
        assert image is not None
        crop = align_face(image, points)
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        crops += [crop, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), grey, cv2.GaussianBlur(crop, (0, 0), 3)]
        crops.append(align_face(image, points, 128))  # another crop size: another centre
    for impl in ("cython", "python"):
        fastpath.set_implementation(impl)
        try:
            for crop in crops:
                sharp, colour = _opencv_measures(crop)
                assert sharpness(crop) == pytest.approx(sharp, rel=1e-9)
                assert chroma(crop) == colour
                q = measure(points, 0.9, crop)
                assert (q.sharpness, q.grey) == (sharpness(crop), colour < GREY_CHROMA)
        finally:
            fastpath.set_implementation("auto")


def test_poor_faces_abstain_from_the_track_vote() -> None:
    tracks = FaceTracks(window=5, majority=3)
    box = (10.0, 10.0, 50.0, 50.0)
    for _ in range(3):
        tracks.update([box], ["ann"])
    for _ in range(5):  # a run of blurred frames: the track stays ann
        ((_, published),) = tracks.update([box], [None])
        assert published == "ann"


def same_decision(a: Decision, b: Decision) -> bool:
    """Field by field, NaN equal to NaN (a garbage embedding's similarity)."""
    pairs = zip(dataclasses.astuple(a), dataclasses.astuple(b), strict=True)
    return all(
        x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) for x, y in pairs
    )


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.3, 0.55, 0.72, 0.75, 0.8, 0.86, 0.93, 1.0, math.nan]), max_size=12),
    quality=st.sampled_from([None, "blurred"]),
    grey=st.booleans(),
)
def test_the_rule_on_the_kernels_ranking_is_decide(values: list[float], quality: str | None, grey: bool) -> None:
    # one sample per identity, D = 1: the scores are (about) the values, ties and NaN included
    grouped = (2 * np.array(values, np.float32) - 1).reshape(-1, 1)
    starts = np.arange(len(values), dtype=np.int64)
    for impl in ("cython", "python"):
        with using(impl):
            scores, best, similarity, lead = fastpath.label_scores(grouped, starts, np.ones(1, np.float32))
        for rule in (RULE, DecisionRule(0.70, 0.0, 0.0)):
            want = decide(scores, rule, quality, grey)
            if best < 0:
                assert want == Decision(-1, -1, 0.0, 0.0, quality)
                continue
            named, confidence = rule_on(similarity, lead, rule, quality, grey)
            assert same_decision(Decision(best if named else -1, best, similarity, confidence, quality), want)


@pytest.mark.parametrize("layout", ["grouped", "in rounds", "shuffled"])
def test_bank_index_match_is_decide_over_its_scores(layout: str) -> None:
    rng = np.random.default_rng(11)
    people, shots, dim = 40, 3, 128
    bank = rng.normal(size=(people * shots, dim)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    who = {
        "grouped": np.repeat(np.arange(people), shots),
        "in rounds": np.tile(np.arange(people), shots),
        "shuffled": rng.permutation(np.repeat(np.arange(people), shots)),
    }[layout]
    labels = [f"p{k}" for k in who]
    names = distinct_labels(labels)
    index = BankIndex(bank, labels)
    near = [bank[i] + rng.normal(0, s, dim) for i in (0, 17, 64, 119) for s in (0.02, 0.06, 0.1)]
    twin = bank[5].copy()
    bank_tie = bank.copy()
    other = next(i for i in range(len(labels)) if labels[i] != labels[5])
    bank_tie[other] = bank[5]  # another person's sample equal to the best: no lead, unknown
    nan = bank[3].copy()
    nan[9] = np.nan  # a garbage embedding: unknown, as before
    for e in [*near, rng.normal(size=dim), twin, nan]:
        e = (e / np.linalg.norm(e)).astype(np.float32)
        cos = bank @ e
        want = np.array([0.5 + 0.5 * cos[[lb == name for lb in labels]].max() for name in names], np.float32)
        for quality, grey in ((None, False), (None, True), ("small", False)):
            m = index.match(e, RULE, quality, grey)
            scores = index.scores(e)
            np.testing.assert_array_equal(m.scores, scores)
            np.testing.assert_allclose(scores, want, rtol=0, atol=1e-6)
            d = decide(scores, RULE, quality, grey)
            assert (m.label, m.class_id) == ((names[d.index], d.index + 1) if d.index >= 0 else (UNKNOWN, 0))
            # (a Match does not keep the best identity of an unknown face: d.best stands in)
            assert same_decision(Decision(m.class_id - 1, d.best, m.similarity, m.confidence, m.quality), d)
            with using("python"):  # the NumPy reference decides the same
                assert index.match(e, RULE, quality, grey).label == m.label
    assert BankIndex(bank_tie, labels).match(twin, RULE).label == UNKNOWN
    garbage = index.match(nan / np.linalg.norm(nan), RULE)
    assert (garbage.label, garbage.class_id) == (UNKNOWN, 0) and math.isnan(garbage.similarity)
    assert garbage.confidence == 0.0  # a NaN score vouches for nothing (it used to say ~1.0)
