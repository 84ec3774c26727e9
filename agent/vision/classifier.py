"""Self-learning classifier: MaixPy's ``SelfLearnClassifier`` semantics on raw feature vectors.

Pure state, no I/O and no model: feed it vectors from :class:`agent.vision.features.FeatureExtractor`.

State
    * **classes**, in order; a class id is the 0-based index in that order (MaixPy's ``idx``).
      Removing a class shifts the ids of the classes after it down by one, as in MaixPy.
    * each class has one or more **views** (``add_class`` with a label that exists adds a view);
      views are never modified, so ``learn`` can always be redone from scratch.
    * unlabelled **samples** (``add_sample``) and, after ``learn``, each sample's share in each
      class (:func:`agent.vision.class_policy.learn_weights`) and its hard class (the largest
      share, ``-1`` = none). A class with hard-assigned samples has a **learned centre**: the mean
      of its views and those samples. Centres are derived, never stored.

Distance (the ranking)
    Plain Euclidean L2 on the raw features, as MaixPy (no normalisation). The distance of a
    frame to a class is the minimum over the class's views and, once learned, its centre
    (nearest-view rule). With one view and nothing learned this is exactly MaixPy's distance to
    its class feature. ``classify`` ranks **every** class by that distance, ascending.

Label, unknown and score
    Decided by a :class:`agent.vision.class_policy.ClassPolicy` (``similarity`` by default,
    ``max_distance``: the old threshold on the best raw distance, or ``maixpy``: the ranking's
    first class, never unknown). With ``similarity`` the named class may differ from the
    ranking's first; ``distance`` is the raw distance of the named (or best) class and
    ``similarity`` the policy's similarity of it. See that module for the rule, ``learn`` and
    the measurements behind the defaults.

Default ``max_distance`` (MobileNetV2 raw features; ``tools/eval_fewshot.py``): 14.0, about the
equal-error point on COIL-20 open set (EfficientNet-Lite0: 12.0). Natural photos of one kind sit
20-30 apart, which is why it is no longer the default rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.vision.class_policy import ClassPolicy, SimilaritySpace, distance_score, hard_classes, learn_weights

UNKNOWN_ID = -1
UNKNOWN_LABEL = "unknown"
DEFAULT_MAX_DISTANCE: Mapping[str, float] = {"mobilenet_v2": 14.0, "efficientnet_lite0": 12.0}


def default_max_distance(model_name: str) -> float:
    """The calibrated ``max_distance`` for a feature model (MobileNetV2's for unknown models)."""
    return DEFAULT_MAX_DISTANCE.get(model_name, DEFAULT_MAX_DISTANCE["mobilenet_v2"])


def pairwise_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D) x (M, D) → (N, M) Euclidean distances, computed in float64."""
    return _Rows(b).l2(a)


class _Rows:
    """Rows compared again and again, kept in float64 with their squared norms."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = np.ascontiguousarray(rows, dtype=np.float64)
        self.sq = np.einsum("ij,ij->i", self.rows, self.rows)

    def l2(self, a: np.ndarray) -> np.ndarray:
        """(N, D) → (N, M) Euclidean distances to the rows."""
        a64 = a.astype(np.float64)
        sq = np.einsum("ij,ij->i", a64, a64)[:, None] + self.sq[None, :] - 2.0 * (a64 @ self.rows.T)
        dist: np.ndarray = np.sqrt(np.maximum(sq, 0.0))
        return dist


@dataclass(frozen=True)
class _Index:
    """Stacked views (class by class; ``starts`` = each class's first row), and the learned
    centres: cached between changes."""

    views: _Rows
    starts: np.ndarray
    learned: list[int]
    centres: _Rows | None
    space: SimilaritySpace


@dataclass(frozen=True)
class ClassifyResult:
    """One classification. ``class_id`` is -1 and ``label`` "unknown" when the policy says so
    (or when there is no class; then ``distance``/``similarity`` are None and ``ranking`` empty)."""

    label: str
    class_id: int
    distance: float | None
    score: float
    ranking: list[tuple[int, float]] = field(default_factory=list)
    similarity: float | None = None

    def to_result(self) -> dict[str, Any]:
        """The DESIGN §4 classify result fields (plain Python types, msgpack/JSON ready)."""
        return {
            "label": self.label,
            "class_id": self.class_id,
            "distance": self.distance,
            "score": self.score,
            "similarity": self.similarity,
            "ranking": [[cid, dist] for cid, dist in self.ranking],
        }


class SelfLearnClassifier:
    """Classes with several views each, unlabelled samples, ``learn`` and ``classify``."""

    def __init__(
        self,
        dim: int | None = None,
        max_distance: float = DEFAULT_MAX_DISTANCE["mobilenet_v2"],
        policy: ClassPolicy | None = None,
    ) -> None:
        self.policy = policy if policy is not None else ClassPolicy(max_distance=max_distance)
        self.dim = dim
        self._labels: list[str] = []
        self._views: list[list[np.ndarray]] = []
        self._samples: list[np.ndarray] = []
        self._weights = np.zeros((0, 0))  # (samples, classes): each sample's learned share
        self._cache: _Index | None = None

    @property
    def max_distance(self) -> float:
        return self.policy.max_distance

    @max_distance.setter
    def max_distance(self, value: float) -> None:
        self.policy = dataclasses.replace(self.policy, max_distance=value)

    @property
    def _assign(self) -> list[int]:
        return [int(a) for a in hard_classes(self._weights)]

    # ----------------------------------------------------------------- state changes
    def _vec(self, vec: np.ndarray, *, copy: bool = True) -> np.ndarray:
        v = np.asarray(vec, dtype=np.float32).reshape(-1)
        if self.dim is None:
            self.dim = int(v.shape[0])
        if v.shape[0] != self.dim:
            raise ValueError(f"feature has {v.shape[0]} values, this classifier holds {self.dim}")
        if not np.isfinite(v).all():
            raise ValueError("feature has NaN or infinite values")
        return v.copy() if copy else v

    def add_class(self, label: str, vec: np.ndarray) -> int:
        """Add a view to ``label`` (a new class at the end if the label is new); → class id."""
        if not label:
            raise ValueError("label must not be empty")
        v = self._vec(vec)
        if label in self._labels:
            cid = self._labels.index(label)
            self._views[cid].append(v)
            self._cache = None
            return cid
        self._labels.append(label)
        self._views.append([v])
        self._weights = np.concatenate([self._weights, np.zeros((len(self._samples), 1))], 1)
        self._cache = None
        return len(self._labels) - 1

    def add_sample(self, vec: np.ndarray) -> int:
        """Add an unlabelled sample (used only by ``learn``); → sample index."""
        self._samples.append(self._vec(vec))
        self._weights = np.concatenate([self._weights, np.zeros((1, len(self._labels)))])
        return len(self._samples) - 1

    def remove_class(self, label: str) -> int:
        """Remove a class and its views; later class ids shift down. → the removed id."""
        try:
            cid = self._labels.index(label)
        except ValueError:
            raise KeyError(label) from None
        del self._labels[cid]
        del self._views[cid]
        self._weights = np.delete(self._weights, cid, axis=1)
        self._cache = None
        return cid

    def remove_sample(self, idx: int) -> None:
        """Remove one sample by index (MaixPy's ``rm_sample``)."""
        if not 0 <= idx < len(self._samples):
            raise IndexError(idx)
        del self._samples[idx]
        self._weights = np.delete(self._weights, idx, axis=0)
        self._cache = None

    def clear(self) -> None:
        """Forget every class and sample (the feature length stays fixed once known)."""
        self._labels.clear()
        self._views.clear()
        self._samples.clear()
        self._weights = np.zeros((0, 0))
        self._cache = None

    # ----------------------------------------------------------------- views of the state
    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    def class_num(self) -> int:
        return len(self._labels)

    def sample_num(self) -> int:
        return len(self._samples)

    def view_counts(self) -> list[int]:
        return [len(v) for v in self._views]

    def views(self, label: str) -> np.ndarray:
        """(V, D) views of one class."""
        return np.stack(self._views[self._labels.index(label)])

    def sample_features(self) -> np.ndarray:
        """(S, D) unlabelled samples (MaixPy's sample features)."""
        return self._stack(self._samples)

    def assignments(self) -> np.ndarray:
        """(S,) class id each sample was assigned to by the last ``learn`` (-1 = none)."""
        return np.asarray(self._assign, dtype=np.int32)

    def learned(self) -> list[bool]:
        """Per class: has ``learn`` given it a centre?"""
        counts = np.bincount(
            np.asarray([a for a in self._assign if a >= 0], dtype=np.int64), minlength=len(self._labels)
        )
        return [bool(n) for n in counts[: len(self._labels)]]

    def class_features(self) -> tuple[list[str], np.ndarray]:
        """MaixPy's view: one (C, D) vector per class, the learned centre or the mean of views."""
        return self.labels, self._stack([self._centre(c) for c in range(len(self._labels))])

    def _stack(self, rows: Sequence[np.ndarray]) -> np.ndarray:
        if not rows:
            return np.zeros((0, self.dim or 0), np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def _centre(self, cid: int, assign: Sequence[int] | None = None) -> np.ndarray:
        assign = self._assign if assign is None else assign
        members = list(self._views[cid]) + [s for s, a in zip(self._samples, assign, strict=True) if a == cid]
        centre: np.ndarray = np.mean(np.stack(members), axis=0).astype(np.float32)
        return centre

    # ----------------------------------------------------------------- distances
    def _index(self) -> _Index:
        """Everything ``classify`` compares against: raw views, learned centres, the policy's space."""
        assign = self._assign
        all_views = np.concatenate([np.stack(v) for v in self._views])
        starts = np.cumsum([0] + [len(v) for v in self._views[:-1]])
        learned = sorted({a for a in assign if a >= 0})
        centres = _Rows(np.stack([self._centre(cid, assign) for cid in learned])) if learned else None
        samples = self._stack(self._samples)
        space = SimilaritySpace([np.stack(v) for v in self._views], samples, self._weights)
        return _Index(_Rows(all_views), starts, learned, centres, space)

    def _class_distances(self, x: np.ndarray, index: _Index) -> np.ndarray:
        """(N, D) → (N, C): min over each class's views and its learned centre (if any)."""
        if not self._labels:
            return np.full((x.shape[0], 0), np.inf)
        out = np.minimum.reduceat(index.views.l2(x), index.starts, axis=1)
        if index.centres is not None:
            out[:, index.learned] = np.minimum(out[:, index.learned], index.centres.l2(x))
        return out

    def distances(self, vecs: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) → (N, C) class distances as ``classify`` ranks them."""
        x = self._queries(vecs)
        if not self._labels:
            return np.zeros((x.shape[0], 0))
        return self._class_distances(x, self._current())

    def _queries(self, vecs: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) → (N, D) float32 queries, checked against the bank's dim."""
        x = np.asarray(vecs, dtype=np.float32)
        x = x[None] if x.ndim == 1 else x
        if x.ndim != 2 or (self.dim is not None and x.shape[1] != self.dim):
            raise ValueError(f"features of shape {np.shape(vecs)} do not match dim {self.dim}")
        return x

    def _current(self) -> _Index:
        if self._cache is None:
            self._cache = self._index()
        return self._cache

    def similarities(self, vecs: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) → (N, C) the policy space's class similarities (see class_policy)."""
        x = self._queries(vecs)
        if not self._labels:
            return np.zeros((x.shape[0], 0))
        return self._current().space.similarities(x)

    # ----------------------------------------------------------------- learn / classify
    def learn(self) -> int:
        """Refine the classes with the unlabelled samples; → rounds run, 0 if nothing changed.

        Soft k-means in the policy's similarity space, seeded by the views, with a "none" option
        at ``min_similarity`` (:func:`agent.vision.class_policy.learn_weights`). Views never move,
        so learning restarts from them: reversible and idempotent. A sample's hard class (its
        largest weight, unless "none" outweighs it) gives MaixPy's learned centre for the raw-L2
        ranking: the mean of the class's views and its samples. Returns 0 when there are no
        classes or samples, or when the result equals what the last ``learn`` produced.
        """
        if not self._labels or not self._samples:
            return 0
        views = [np.stack(v) for v in self._views]
        weights, rounds = learn_weights(views, self._stack(self._samples), self.policy.min_similarity)
        old = self._weights
        if np.allclose(weights, old, rtol=0.0, atol=1e-9):
            return 0
        self._weights = weights
        self._cache = None
        return rounds

    def score(self, distance: float) -> float:
        """The raw-distance score: 0..1, falls with the distance, 0.5 at ``max_distance``."""
        return distance_score(distance, self.max_distance)

    def classify(self, vec: np.ndarray) -> ClassifyResult:
        """Rank every class by L2 distance, ascending; name the best unless beyond the threshold."""
        if not self._labels:
            return ClassifyResult(UNKNOWN_LABEL, UNKNOWN_ID, None, 0.0, [])
        v = self._vec(vec, copy=False)
        return self._result(self.distances(v)[0], self.similarities(v)[0])

    def classify_batch(self, vecs: np.ndarray) -> list[ClassifyResult]:
        if not self._labels:
            return [ClassifyResult(UNKNOWN_LABEL, UNKNOWN_ID, None, 0.0, []) for _ in vecs]
        rows = zip(self.distances(vecs), self.similarities(vecs), strict=True)
        return [self._result(d, s) for d, s in rows]

    def _result(self, row: np.ndarray, sims: np.ndarray) -> ClassifyResult:
        order = np.argsort(row, kind="stable")
        ranking = [(int(i), float(row[i])) for i in order]
        cid, known, score = self.policy.decide(row, sims)
        return ClassifyResult(
            label=self._labels[cid] if known else UNKNOWN_LABEL,
            class_id=cid if known else UNKNOWN_ID,
            distance=float(row[cid]),
            score=score,
            ranking=ranking,
            similarity=float(sims[cid]),
        )

    # ----------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        """Plain arrays a store can save: labels, views (V, D) with their class ids, samples
        (S, D) with their learned class and (S, C) weights. Restore with :meth:`from_state`."""
        views = [v for vs in self._views for v in vs]
        return {
            "dim": self.dim,
            "labels": self.labels,
            "views": self._stack(views),
            "view_class": np.repeat(np.arange(len(self._labels)), self.view_counts()).astype(np.int32),
            "samples": self.sample_features(),
            "sample_class": self.assignments(),
            "sample_weights": self._weights.copy(),
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        policy: ClassPolicy | None = None,
    ) -> SelfLearnClassifier:
        """Rebuild from :meth:`state`; raises ``ValueError`` on inconsistent arrays. Without
        ``sample_weights`` each sample weighs 1 in its ``sample_class``."""
        dim = state.get("dim")
        clf = cls(int(dim) if dim is not None else None, policy=policy)
        labels = [str(s) for s in state.get("labels", [])]
        if len(set(labels)) != len(labels):
            raise ValueError("duplicate labels in classifier state")
        views = np.asarray(state.get("views", np.zeros((0, 0))), dtype=np.float32)
        owner = np.asarray(state.get("view_class", np.zeros(0)), dtype=np.int64).reshape(-1)
        if len(views) != len(owner) or (len(owner) and (owner.min() < 0 or owner.max() >= len(labels))):
            raise ValueError("views and view_class do not match the labels")
        for cid, label in enumerate(labels):
            rows = views[owner == cid]
            if not len(rows):
                raise ValueError(f"class {label!r} has no view")
            for row in rows:
                clf.add_class(label, row)
        samples = np.asarray(state.get("samples", np.zeros((0, 0))), dtype=np.float32)
        assign = np.asarray(state.get("sample_class", np.full(len(samples), UNKNOWN_ID)), dtype=np.int64).reshape(-1)
        if len(assign) != len(samples) or (len(assign) and assign.max() >= len(labels)):
            raise ValueError("samples and sample_class do not match")
        for row in samples:
            clf.add_sample(row)
        weights = state.get("sample_weights")
        if weights is None:
            weights = np.zeros((len(samples), len(labels)))
            rows = np.flatnonzero(assign >= 0)
            weights[rows, assign[rows]] = 1.0
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(samples), len(labels)) or not np.isfinite(weights).all():
            raise ValueError("sample_weights do not match the samples and labels")
        clf._weights = weights
        clf._cache = None
        return clf
