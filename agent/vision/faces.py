"""Face recognition: detect → align → embed (SFace) → match against a bank, with per-track voting.

Matching follows MaixPy's ``FaceRecognizer``: the score of a face against an enrolled vector is
``0.5 + 0.5 * cos`` (0..1), the face is named when its best score is ``> match``, else it is
``"unknown"`` with class id 0. Class ids are ``1 + index`` of the label in the ordered list of
distinct bank labels (first appearance order). A person may have several enrolled vectors; their
score is the max over those samples (nearest neighbour: a new view must not be diluted by a
centroid of different poses).

Calibrated default ``match`` threshold for SFace, from ../shared/eval/faces: knn_examples
train + test, two_people, alex-lacamoire, lin-manuel-miranda (obama/obama2/biden are copies of
train files and count once): 20 faces of 6 people, all 190 pairs (``tools/eval_faces.py``):

- RetinaFace landmarks: same person (28 pairs) score min 0.7655, mean 0.8636, max 0.9757;
  different people (162 pairs) min 0.4446, mean 0.5581, max 0.6317.
- YuNet landmarks: same min 0.7725, mean 0.8641; different max 0.6292, mean 0.5560.

``DEFAULT_MATCH = 0.70`` is the middle of the gap (0.632..0.766 with RetinaFace): margin 0.068 over
the closest different-person pair and 0.066 under the weakest same-person pair. In cosine terms it
is 0.40, near OpenCV's published SFace threshold 0.363. MaixPy's 0.85 belongs to its own models
(with SFace it would reject 10 of the 28 genuine pairs). Both detectors share it.

Live streams: :class:`FaceTracks` links faces across frames (greedy IoU) and publishes a label
only once it has ``majority`` agreeing votes among the track's last ``window`` frames; until
then the face is published as unknown. A published label is kept until another one (``unknown``
included) reaches the majority, so a one-frame flicker never flips it. Single images
(``infer``) pass no tracks and get single-shot identities.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

import fastpath
from agent.vision.face_align import align_face, align_face_blob
from agent.vision.face_crops import embed_crop, embed_input
from agent.vision.face_decision import (
    DEFAULT_MATCH,
    UNKNOWN,
    DecisionRule,
    confidence_of,
    decide,
    lead_of,
    rule_on,
)
from agent.vision.face_detect import DEFAULT_SCORE, Face, FaceDetector
from agent.vision.face_negatives import NegativeIndex, apply_negatives
from agent.vision.face_quality import QualityLimits, measure, verdict
from agent.vision.runtime import Model

__all__ = ["DEFAULT_MATCH", "UNKNOWN", "DecisionRule"]
DEFAULT_DETECT = DEFAULT_SCORE
DEFAULT_MAX_FACES = 32  # faces recognised per frame (limits.faces_per_frame)
EMBED_DIM = 128

Box = tuple[float, float, float, float]
EnrolPick = Literal["largest", "unknown"]


# --- matching ------------------------------------------------------------------------------


def distinct_labels(bank_labels: Sequence[str]) -> list[str]:
    """Distinct labels in first-appearance order: label ``k`` has class id ``k + 1``."""
    return list(dict.fromkeys(bank_labels))


@dataclass(frozen=True)
class Match:
    """Best identity of one embedding; ``scores[k]`` is the score of ``labels[k]``."""

    label: str
    class_id: int
    similarity: float  # 0.5 + 0.5 * cos of the best sample (0.0 for an empty bank)
    labels: list[str] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    confidence: float = 0.0  # calibrated probability that the best identity is right
    quality: str | None = None  # why the face was too poor to judge (None: it was judged)
    grey: bool = False  # the face had no colour (IR / night): judged with face.margin_grey

    def score_of(self, label: str) -> float:
        try:
            return float(self.scores[self.labels.index(label)])
        except ValueError:
            return 0.0

    def confidence_of(self, label: str) -> float:
        """The calibrated confidence that ``label`` is right for this face (0.0 if not enrolled)."""
        try:
            k = self.labels.index(label)
        except ValueError:
            return 0.0
        return confidence_of(float(self.scores[k]), lead_of(self.scores, k))


class BankIndex:
    """Enrolled vectors prepared once for matching many embeddings: unit rows, the samples
    grouped by label, and for large banks an int8 :mod:`fastpath` bank.

    Up to ``LARGE`` samples every sample is scored, in one pass of ``fastpath.label_scores`` over
    a copy of the rows grouped by label (dot products, each label's max and score, the best and
    its lead over the runner-up). From ``LARGE`` samples on, fastpath's int8 top-``TOP_K`` search
    picks the candidate samples (≥ 3x faster than NumPy at 100,000) and only those are scored
    exactly; a label with no candidate gets the ``TOP_K``-th candidate's score, an upper bound of
    its own.
    """

    LARGE = 8192
    TOP_K = 64

    def __init__(self, bank_vectors: np.ndarray | None, bank_labels: Sequence[str]) -> None:
        self.labels = distinct_labels(bank_labels)
        self.n = 0 if bank_vectors is None else len(bank_labels)
        self.unit: np.ndarray | None = None
        self.grouped: np.ndarray | None = None  # the unit rows grouped by label (below LARGE)
        self.starts = np.zeros(0, np.int64)  # where each label's rows begin in `grouped`
        self.fast: fastpath.Bank | None = None
        if bank_vectors is None or self.n == 0:
            return
        if len(bank_vectors) != len(bank_labels):
            raise ValueError(f"bank has {len(bank_vectors)} vectors but {len(bank_labels)} labels")
        bank = np.asarray(bank_vectors, np.float32)
        norms = np.linalg.norm(bank, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):  # tolerate banks imported unnormalised
            bank = bank / np.maximum(norms, 1e-12)[:, None]
        self.unit = np.ascontiguousarray(bank)
        index = {label: k for k, label in enumerate(self.labels)}
        self.label_of = np.fromiter((index[lb] for lb in bank_labels), np.int64, self.n)
        if self.n >= self.LARGE:
            self.fast = fastpath.make_bank(self.unit, "int8")
            return
        order = np.argsort(self.label_of, kind="stable")
        # every label has at least one sample
        self.starts = np.searchsorted(self.label_of[order], np.arange(len(self.labels))).astype(np.int64)
        in_order = bool((order == np.arange(self.n)).all())
        self.grouped = self.unit if in_order else np.ascontiguousarray(self.unit[order])

    def scores(self, embedding: np.ndarray) -> np.ndarray:
        """Per distinct label, the best ``0.5 + 0.5 * cos`` over its samples (float32)."""
        if self.grouped is not None:
            return fastpath.label_scores(self.grouped, self.starts, embedding)[0]
        if self.fast is None or self.unit is None:  # an empty bank
            return np.zeros(0, np.float32)
        emb = np.asarray(embedding, np.float32).reshape(-1)
        idx, _ = fastpath.bank_search(emb, self.fast, k=self.TOP_K)
        cand = idx[0]
        exact = (0.5 + 0.5 * (self.unit[cand] @ emb)).astype(np.float32)
        per_label = np.full(len(self.labels), float(exact.min()), np.float32)
        np.maximum.at(per_label, self.label_of[cand], exact)
        return per_label

    def match(
        self,
        embedding: np.ndarray,
        rule: DecisionRule | float = DEFAULT_MATCH,
        quality: str | None = None,
        grey: bool = False,
    ) -> Match:
        """The decision of :mod:`agent.vision.face_decision` (a bare float is MaixPy's rule alone:
        named when the best score > it); ``quality`` is the face's quality verdict, ``grey``
        whether it has no colour."""
        if not isinstance(rule, DecisionRule):
            rule = DecisionRule(match=float(rule), margin=0.0, margin_grey=0.0)
        if self.grouped is not None:  # one pass scores and ranks the labels: decide's rule on the best
            scores, best, similarity, lead = fastpath.label_scores(self.grouped, self.starts, embedding)
            named, confidence = rule_on(similarity, lead, rule, quality, grey)
        else:
            scores = self.scores(embedding)
            d = decide(scores, rule, quality, grey)
            best, similarity, confidence, named = d.index, d.similarity, d.confidence, d.index >= 0
        if named:
            return Match(self.labels[best], best + 1, similarity, self.labels, scores, confidence, None, grey)
        return Match(UNKNOWN, 0, similarity, self.labels, scores, confidence, quality, grey)


def label_scores(
    embedding: np.ndarray, bank_vectors: np.ndarray | None, bank_labels: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """Per distinct label, the best ``0.5 + 0.5 * cos`` over that label's samples."""
    index = BankIndex(bank_vectors, bank_labels)
    return index.labels, index.scores(embedding)


def match(
    embedding: np.ndarray,
    bank_vectors: np.ndarray | None,
    bank_labels: Sequence[str],
    rule: DecisionRule | float = DEFAULT_MATCH,
) -> Match:
    """The decision rule over one bank (a float: MaixPy's plain threshold). Matching many
    embeddings against one bank: build a :class:`BankIndex` once."""
    return BankIndex(bank_vectors, bank_labels).match(embedding, rule)


def pick_for_enrol(
    faces: Sequence[Face],
    pick: EnrolPick = "largest",
    *,
    matches: Sequence[Match] | None = None,
) -> list[int]:
    """Indices of the faces to enrol: ``largest`` = the biggest box; ``unknown`` = every face
    whose match is unknown (MaixPy's app learns every unknown face; needs ``matches``)."""
    if not faces:
        return []
    if pick == "largest":
        return [max(range(len(faces)), key=lambda i: faces[i].area)]
    if pick == "unknown":
        if matches is None or len(matches) != len(faces):
            raise ValueError("pick='unknown' needs one match per face")
        return [i for i, m in enumerate(matches) if m.label == UNKNOWN]
    raise ValueError(f"pick must be 'largest' or 'unknown', not {pick!r}")


# --- live-stream voting ----------------------------------------------------------------------


def box_iou(a: Box, b: Box) -> float:
    """IoU of two (x, y, w, h) boxes."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@dataclass
class _Track:
    track_id: int
    box: Box
    votes: deque[str]
    published: str = UNKNOWN
    missed: int = 0


class FaceTracks:
    """Greedy IoU tracker with per-track identity voting over the last ``window`` frames."""

    def __init__(self, iou_th: float = 0.3, window: int = 5, majority: int = 3, max_missed: int = 3) -> None:
        if not 1 <= majority <= window:
            raise ValueError("need 1 <= majority <= window")
        self.iou_th = iou_th
        self.window = window
        self.majority = majority
        self.max_missed = max_missed
        self._tracks: list[_Track] = []
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._tracks)

    def reset(self) -> None:
        self._tracks.clear()

    def _associate(self, boxes: Sequence[Box]) -> list[_Track | None]:
        pairs = sorted(
            ((box_iou(t.box, b), ti, bi) for ti, t in enumerate(self._tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        owner: list[_Track | None] = [None] * len(boxes)
        used: set[int] = set()
        for iou, ti, bi in pairs:
            if iou < self.iou_th:
                break
            if ti in used or owner[bi] is not None:
                continue
            used.add(ti)
            owner[bi] = self._tracks[ti]
        return owner

    def update(self, boxes: Sequence[Box], labels: Sequence[str | None]) -> list[tuple[int, str]]:
        """One frame's faces (box, single-shot label) → (track id, published label) for each.
        A ``None`` label abstains (a face too poor to judge: it keeps its track alive and the
        published label as it is, without voting ``unknown``).

        Call once per frame, also with no faces, so that unseen tracks age and expire.
        """
        if len(boxes) != len(labels):
            raise ValueError("one label per box")
        owners = self._associate(boxes) if self._tracks else [None] * len(boxes)
        for track in self._tracks:  # every track ages; the ones seen now are reset below
            track.missed += 1
        out: list[tuple[int, str]] = []
        for box, label, owner in zip(boxes, labels, owners, strict=True):
            track = owner or self._start(box)
            track.box, track.missed = box, 0
            if label is not None:
                track.votes.append(label)
                track.published = self._winner(track)
            out.append((track.track_id, track.published))
        if any(t.missed > self.max_missed for t in self._tracks):
            self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return out

    def _start(self, box: Box) -> _Track:
        track = _Track(self._next_id, box, deque(maxlen=self.window))
        self._next_id += 1
        self._tracks.append(track)
        return track

    def _winner(self, track: _Track) -> str:
        """The label most of the track's last votes agree on once it has ``majority`` of them
        (the first voted among equals), else the label published so far."""
        if len(track.votes) < self.majority:
            return track.published
        counts: dict[str, int] = {}
        for vote in track.votes:
            counts[vote] = counts.get(vote, 0) + 1
        winner = max(counts, key=counts.__getitem__)  # the first of the most common, as Counter's
        return winner if counts[winner] >= self.majority else track.published


# --- the pipeline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceAnalysis:
    """One frame's faces (best first) and each one's single-shot match, embedding and aligned
    crop (BGR, the embedder's input size)."""

    faces: list[Face]
    matches: list[Match]
    embeddings: list[np.ndarray] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)


class FacePipeline:
    """Detector (RetinaFace or YuNet) + SFace embedder + bank matching."""

    def __init__(
        self,
        detector_model: Model,
        detector_kind: str,
        embedder_model: Model,
        max_faces: int = DEFAULT_MAX_FACES,
    ) -> None:
        """``max_faces``: the most faces one frame or image is searched for (best detections
        first). Each costs an alignment and an SFace run, so this bounds a frame's time even
        when ``face.detect`` is set near 0 and every anchor passes."""
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        self.detector = FaceDetector(detector_model, detector_kind)
        self.max_faces = max_faces
        self.embedder = embedder_model
        size = embedder_model.spec.input.size
        self.align_size = size[0] if size else 112
        self._index: tuple[object, object, BankIndex] | None = None

    def bank_index(self, bank_vectors: np.ndarray | None, bank_labels: Sequence[str]) -> BankIndex:
        """The :class:`BankIndex` of this bank, rebuilt only when other objects are passed (the
        face service passes the same arrays until the bank changes)."""
        cached = self._index
        if cached is not None and cached[0] is bank_vectors and cached[1] is bank_labels:
            return cached[2]
        index = BankIndex(bank_vectors, bank_labels)
        self._index = (bank_vectors, bank_labels, index)
        return index

    def detect(self, frame: np.ndarray, score_th: float = DEFAULT_DETECT, nms_th: float | None = None) -> list[Face]:
        return self.detector.detect(frame, score_th, nms_th, self.max_faces)

    def align(self, frame: np.ndarray, face: Face) -> np.ndarray:
        """One face aligned onto the ArcFace template: the embedder's input picture (BGR)."""
        return align_face(frame, face.points, self.align_size)

    def align_input(self, frame: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
        """One face aligned once: its crop (as :meth:`align`) and the embedder's input from it
        (as :meth:`embed_blob`)."""
        spec = self.embedder.spec.input
        rgb = spec.colour == "rgb"
        return align_face_blob(frame, face.points, self.align_size, rgb=rgb, mean=spec.mean, scale=spec.scale)

    def embed_blob(self, frame: np.ndarray, face: Face) -> np.ndarray:
        """The embedder's input for one face: aligned crop → NCHW float32."""
        return self.align_input(frame, face)[1]

    def embed(self, frame: np.ndarray, face: Face) -> np.ndarray:
        """L2-normalised float32 embedding (128-d for SFace) of one detected face."""
        return self.embed_crop(self.align(frame, face))

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        """L2-normalised float32 embedding of an aligned face crop (BGR, the embedder's input size)."""
        return embed_crop(self.embedder, crop)

    def judge(
        self,
        face: Face,
        crop: np.ndarray,
        index: BankIndex,
        rule: DecisionRule,
        limits: QualityLimits,
        blob: np.ndarray,
    ) -> tuple[np.ndarray, Match]:
        """Measure quality, embed and decide one aligned face (its crop and the crop as the
        embedder's input, from :meth:`align_input`): its embedding and its match."""
        quality = measure(face.points, face.score, crop)
        vec = embed_input(self.embedder, blob)
        return vec, index.match(vec, rule, verdict(quality, limits), quality.grey)

    def recognise(
        self,
        frame: np.ndarray,
        bank_vectors: np.ndarray | None,
        bank_labels: Sequence[str],
        *,
        detect_th: float = DEFAULT_DETECT,
        rule: DecisionRule | None = None,
        limits: QualityLimits | None = None,
        nms_th: float | None = None,
        tracks: FaceTracks | None = None,
    ) -> list[dict[str, Any]]:
        """Result entries of the ``faces`` result (DESIGN §4), best detection first.

        With ``tracks`` (live stream) labels are voted per track; without, single-shot.
        """
        found = self.analyse(
            frame, bank_vectors, bank_labels, detect_th=detect_th, rule=rule, limits=limits, nms_th=nms_th
        )
        return self.entries(found, tracks)

    def analyse(
        self,
        frame: np.ndarray,
        bank_vectors: np.ndarray | None,
        bank_labels: Sequence[str],
        *,
        detect_th: float = DEFAULT_DETECT,
        rule: DecisionRule | None = None,
        limits: QualityLimits | None = None,
        nms_th: float | None = None,
        negatives: NegativeIndex | None = None,
    ) -> FaceAnalysis:
        """Detect, embed and match one frame: the heavy part of :meth:`recognise`. It keeps no
        state, so frames may be analysed side by side; :meth:`entries` must then see them in
        frame order. ``negatives`` (corrections) may turn a match ``unknown``
        (:mod:`agent.vision.face_negatives`)."""
        faces = self.detect(frame, detect_th, nms_th)
        index = self.bank_index(bank_vectors, bank_labels)
        rule, limits = rule or DecisionRule(), limits or QualityLimits()
        aligned = [self.align_input(frame, f) for f in faces]
        crops = [c for c, _ in aligned]
        judged = [self.judge(f, c, index, rule, limits, b) for f, (c, b) in zip(faces, aligned, strict=True)]
        vectors = [v for v, _ in judged]
        matches = apply_negatives([m for _, m in judged], vectors, negatives)
        return FaceAnalysis(faces, matches, vectors, crops)

    def entries(self, found: FaceAnalysis, tracks: FaceTracks | None = None) -> list[dict[str, Any]]:
        """The result entries of an analysed frame, voted per track with ``tracks`` (stateful:
        call it in frame order)."""
        faces, matches = found.faces, found.matches
        labels = [m.label for m in matches]
        track_ids: list[int | None] = [None] * len(faces)
        if tracks is not None:  # a face too poor to judge abstains from its track's vote
            voted = tracks.update([f.box for f in faces], [None if m.quality else m.label for m in matches])
            track_ids = [tid for tid, _ in voted]
            labels = [lb for _, lb in voted]
        results: list[dict[str, Any]] = []
        for face, m, label, tid in zip(faces, matches, labels, track_ids, strict=True):
            class_id, similarity, confidence = m.class_id, m.similarity, m.confidence
            if label != m.label:  # the vote overrides this frame's single-shot answer
                if label in m.labels:
                    class_id = m.labels.index(label) + 1
                    similarity = m.score_of(label)
                    confidence = 0.0 if m.quality else m.confidence_of(label)  # a poor frame vouches for nothing
                else:  # not confirmed yet, or the label left the bank
                    label, class_id = UNKNOWN, 0
            results.append(face_entry(face, label, class_id, similarity, tid, confidence, m.quality))
        return results

    def enrol_candidates(
        self,
        frame: np.ndarray,
        bank_vectors: np.ndarray | None,
        bank_labels: Sequence[str],
        pick: EnrolPick = "largest",
        *,
        detect_th: float = DEFAULT_DETECT,
        rule: DecisionRule | None = None,
        limits: QualityLimits | None = None,
        negatives: NegativeIndex | None = None,
    ) -> list[tuple[Face, np.ndarray]]:
        """Faces (with their embeddings) that ``face/enrol`` should add for ``pick``
        (``unknown``: faces the rule does not name, too poor ones excepted)."""
        if pick == "largest":
            faces = self.detect(frame, detect_th)
            return [(faces[i], self.embed(frame, faces[i])) for i in pick_for_enrol(faces, pick)]
        found = self.analyse(
            frame, bank_vectors, bank_labels, detect_th=detect_th, rule=rule, limits=limits, negatives=negatives
        )
        picked = pick_for_enrol(found.faces, pick, matches=found.matches)
        return [(found.faces[i], found.embeddings[i]) for i in picked if found.matches[i].quality is None]


def face_entry(
    face: Face,
    label: str,
    class_id: int,
    similarity: float,
    track_id: int | None,
    confidence: float = 0.0,
    quality: str | None = None,
) -> dict[str, Any]:
    """One entry of the ``faces`` result list, in frame pixels."""
    x, y, w, h = face.box
    return {
        "box": [round(x), round(y), round(w), round(h)],
        "score": round(face.score, 4),
        "points": [[round(px, 1), round(py, 1)] for px, py in face.points.tolist()],
        "label": label,
        "class_id": class_id,
        "similarity": round(similarity, 4),
        "confidence": round(confidence, 4),
        "quality": quality,
        "track_id": track_id,
    }
