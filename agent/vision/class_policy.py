"""How the classifier names a frame: the class policy (``label``/``unknown``, ``score``) and ``learn``.

The *ranking* stays MaixPy's (raw L2, ascending; :mod:`agent.vision.classifier`). Which class is
named, whether it is ``unknown`` and the 0..1 ``score`` come from one of three policies
(``thresholds.classifier.policy``):

``similarity`` (default)
    Features are L2-normalised. A class's **similarity** to a frame is the mean of two cosines:
    to the class **centre** (the normalised sum of its unit views and of the unit samples ``learn``
    gave it, each weighed by its share) and to its **nearest view**. The class with the highest
    similarity is named, unless that similarity is below ``min_similarity`` (then ``unknown``).
    ``score = 1 / (1 + exp(-(s - min_similarity) / 0.04))``: 0.5 at the threshold.
``max_distance``
    The old rule: the raw-L2 first class of the ranking, ``unknown`` beyond ``max_distance``;
    ``score`` is the logistic of the distance centred on ``max_distance``.
``maixpy``
    MaixPy's closed set: always the ranking's first class (never ``unknown``); same ``score``.

Why this rule (``tools/eval_classifier.py``, COCO crops 5-way 5-shot, 200 seeded episodes,
MobileNetV2): best class raw-L2 nearest view 0.774, raw-L2 centroid 0.834, cosine centroid 0.850,
this mean of centre and nearest view 0.852. On COIL-20 (turntable views, where the nearest view
matters) cosine centroid alone falls to 0.955 5-shot, the mean keeps 0.971 (raw L2 0.969). For the
unknown decision, the plain best similarity beat the margin to the second class, a per-class radius
from the views' spread and softmax confidences at every point of the open-set curve (5 views a
class are too few to estimate a spread).

``learn`` (MaixPy's is closed source): soft k-means seeded by the views, with a "none" option.
Each round, every sample's similarities to the classes and a constant ``min_similarity`` for
"none" go through a softmax at temperature 1/20; a sample's weights in the classes are its
probabilities (what goes to "none" is dropped), and each centre becomes the normalised sum of its
unit views and weighted unit samples. Views never move and their weight is 1, so learning restarts
from them (reversible, deterministic). Rounds stop when no weight moves by more than 1e-4 (at
most 50). A sample's hard class (for MaixPy's raw-L2 learned centre and the ``.bin`` export) is
its largest weight, or none when "none" is larger. A sample is compared with each centre without
its own share (leave-one-out): otherwise a photo just below the threshold pulls itself in. Gain on
COCO crops (200 episodes; the queries and 5 crops of untaught classes as unlabelled samples): best
class 0.852 → 0.857 (+0.005 ± 0.002 s.e., paired), published label 0.841 → 0.856 (+0.015 ± 0.003);
COIL-20 1-shot with the other views as samples 0.870 → 0.885.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Policy = Literal["similarity", "max_distance", "maixpy"]
POLICIES: tuple[Policy, ...] = ("similarity", "max_distance", "maixpy")
DEFAULT_POLICY: Policy = "similarity"
# Calibrated per feature model (tools/eval_classifier.py); the settings default is MobileNetV2's.
DEFAULT_MIN_SIMILARITY = {"mobilenet_v2": 0.56, "efficientnet_lite0": 0.40}
SCORE_WIDTH = 0.04
LEARN_TEMPERATURE = 20.0
LEARN_ROUNDS = 50
LEARN_TOLERANCE = 1e-4


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); an all-zero row stays zero."""
    x64 = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x64, axis=-1, keepdims=True)
    return x64 / np.where(norm > 0, norm, 1.0)


class SimilaritySpace:
    """The classes as unit views and centres; :meth:`similarities` is the policy's class score.

    ``views`` holds each class's (V, D) views; ``samples`` (S, D) and ``weights`` (S, C) are the
    unlabelled samples and their learned share in each class (rows sum to at most 1).
    """

    def __init__(
        self, views: Sequence[np.ndarray], samples: np.ndarray | None = None, weights: np.ndarray | None = None
    ) -> None:
        if not views:
            raise ValueError("no classes")
        units = [unit_rows(v) for v in views]
        self.views = np.concatenate(units)
        self.starts = np.cumsum([0] + [len(u) for u in units[:-1]])
        sums = np.stack([u.sum(0) for u in units])
        if samples is not None and weights is not None and len(samples):
            sums = sums + weights.T @ unit_rows(samples)
        self.centres = unit_rows(sums)

    def similarities(self, x: np.ndarray) -> np.ndarray:
        """(N, D) raw features → (N, C): ½ cos to the centre + ½ cos to the nearest view."""
        q = unit_rows(x)
        nearest = np.maximum.reduceat(q @ self.views.T, self.starts, axis=1)
        sims: np.ndarray = 0.5 * (q @ self.centres.T) + 0.5 * nearest
        return sims


def learn_weights(views: Sequence[np.ndarray], samples: np.ndarray, none: float) -> tuple[np.ndarray, int]:
    """Soft k-means with a "none" option at similarity ``none`` → ((S, C) weights, rounds run).

    A sample is compared with each centre *without its own share* (leave-one-out), so it cannot
    pull itself into a class."""
    weights = np.zeros((len(samples), len(views)))
    if not len(samples) or not views:
        return weights, 0
    space = SimilaritySpace(views)
    units = [unit_rows(v) for v in views]
    view_sums = np.stack([u.sum(0) for u in units])
    s = unit_rows(samples)
    nearest = np.maximum.reduceat(s @ space.views.T, space.starts, axis=1)
    rounds = 0
    for _ in range(LEARN_ROUNDS):
        sums = view_sums + weights.T @ s  # (C, D)
        dots = s @ sums.T - weights  # (S, C): u_i · (sum_c - w_ic u_i), as u_i · u_i = 1
        sq = np.einsum("cd,cd->c", sums, sums)[None, :] - 2.0 * weights * (s @ sums.T) + weights**2
        cos = dots / np.sqrt(np.maximum(sq, 1e-12))
        z = LEARN_TEMPERATURE * np.concatenate([0.5 * cos + 0.5 * nearest, np.full((len(s), 1), none)], axis=1)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        new = p[:, :-1]
        rounds += 1
        done = bool(np.abs(new - weights).max() <= LEARN_TOLERANCE)
        weights = new
        if done:
            break
    return weights, rounds


def hard_classes(weights: np.ndarray) -> np.ndarray:
    """(S, C) weights → (S,) the class with the largest weight, -1 where "none" outweighs it."""
    if weights.shape[1] == 0:
        return np.full(len(weights), -1, dtype=np.int64)
    best = weights.argmax(axis=1)
    top = weights[np.arange(len(weights)), best]
    return np.where(top > 1.0 - weights.sum(axis=1), best, -1)


def distance_score(distance: float, max_distance: float) -> float:
    """0..1, falls with the raw L2 distance, 0.5 at ``max_distance``, ~0.98 at half of it."""
    # 8 (d/m - 1), not (d - m) / (m / 8): m / 8 underflows to 0 for a subnormal m (fuzz found)
    z = 8.0 * (distance / max_distance - 1.0)
    return 0.0 if z > 700 else 1.0 / (1.0 + math.exp(z))


def similarity_score(similarity: float, min_similarity: float) -> float:
    """0..1, rises with the similarity, 0.5 at ``min_similarity``, ~0.95 at +0.12."""
    z = (min_similarity - similarity) / SCORE_WIDTH
    return 0.0 if z > 700 else 1.0 / (1.0 + math.exp(z))


@dataclass(frozen=True)
class ClassPolicy:
    """The thresholds of the three policies and which one decides."""

    policy: Policy = DEFAULT_POLICY
    max_distance: float = 14.0
    min_similarity: float = DEFAULT_MIN_SIMILARITY["mobilenet_v2"]

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if not (self.max_distance > 0 and math.isfinite(self.max_distance)):
            raise ValueError(f"max_distance must be a positive number, got {self.max_distance}")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in [-1, 1], got {self.min_similarity}")

    def decide(self, distances: np.ndarray, similarities: np.ndarray) -> tuple[int, bool, float]:
        """One frame's (C,) raw distances and similarities → (class, known, score).

        ``class`` is the policy's best class (reported even when it is not ``known``)."""
        if self.policy == "similarity":
            best = int(np.argmax(similarities))
            s = float(similarities[best])
            return best, s >= self.min_similarity, similarity_score(s, self.min_similarity)
        best = int(np.argmin(distances))
        d = float(distances[best])
        known = self.policy == "maixpy" or d <= self.max_distance
        return best, known, distance_score(d, self.max_distance)
