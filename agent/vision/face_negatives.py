"""Corrections: negative examples ("this is not X", ``face/reject``) that a match must beat.

A post-decision step, independent of how the decision was made: once a face has been named X,
its embedding is compared with X's negative examples; when the closest negative is at least as
similar as X's closest enrolled sample (``0.5 + 0.5 * cos`` both), the face is not X after all
and becomes ``unknown`` (class 0). It is a nearest-neighbour rule between X's positives and
negatives, so one correction turns away the stranger it was made from — and the same stranger in
other photos, who is closer to their own face than to X's — while X, closer to their own samples
than to the stranger, is still named. Negatives of X never affect any other identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # faces.py calls this module: no import cycle at run time
    from agent.vision.faces import Match

UNKNOWN = "unknown"


class NegativeIndex:
    """Negative vectors grouped by the label they are a correction of."""

    def __init__(self, vectors: np.ndarray, labels: Sequence[str]) -> None:
        if len(vectors) != len(labels):
            raise ValueError(f"{len(vectors)} negative vectors but {len(labels)} labels")
        unit = np.asarray(vectors, np.float32).reshape(len(labels), -1)
        norms = np.linalg.norm(unit, axis=1, keepdims=True) if len(labels) else np.ones((0, 1), np.float32)
        self.unit = unit / np.maximum(norms, 1e-12)
        self.rows: dict[str, np.ndarray] = {}
        for i, label in enumerate(labels):
            self.rows.setdefault(label, np.zeros(0, np.int64))
            self.rows[label] = np.append(self.rows[label], i)

    def __len__(self) -> int:
        return len(self.unit)

    def best(self, embedding: np.ndarray, label: str) -> float | None:
        """The highest ``0.5 + 0.5 * cos`` between ``embedding`` and a negative of ``label``."""
        rows = self.rows.get(label)
        if rows is None:
            return None
        emb = np.asarray(embedding, np.float32).reshape(-1)
        return float(0.5 + 0.5 * float((self.unit[rows] @ emb).max()))


def veto(match: Match, embedding: np.ndarray, negatives: NegativeIndex | None) -> Match:
    """``match`` unchanged, or turned ``unknown`` when a negative of its label beats its samples."""
    if negatives is None or match.label == UNKNOWN:
        return match
    worst = negatives.best(embedding, match.label)
    if worst is None or worst < match.score_of(match.label):
        return match
    return dataclasses.replace(match, label=UNKNOWN, class_id=0)


def apply_negatives(
    matches: Sequence[Match], embeddings: Sequence[np.ndarray], negatives: NegativeIndex | None
) -> list[Match]:
    """:func:`veto` for each face of a frame."""
    if len(matches) != len(embeddings):
        raise ValueError(f"{len(matches)} matches but {len(embeddings)} embeddings")
    if negatives is None:  # no corrections (the usual case): nothing to compare
        return list(matches)
    return [veto(m, e, negatives) for m, e in zip(matches, embeddings, strict=True)]
