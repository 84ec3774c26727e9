"""Open-set face recognition on ../shared/eval/faces_open: known faces named, strangers rejected.

Protocol (the accuracy test tests/accuracy/test_faces_open_accuracy.py asserts the bars on it):

- Photos. Every photo is centred on a mid-grey canvas three times its size (its long side of
  margin on every side: Extended Yale B crops are tight, and RetinaFace's landmarks on a face
  that fills the frame are off: with 25 % margin Yale's 1-photo rank-1 is 0.62, with 100 % 0.995).
  The agent's detector (RetinaFace, ``face.detect`` 0.6) runs on it and the face nearest the
  centre is the labelled person (LFW photos can hold several people). It is aligned, measured by
  the quality gate and embedded by SFace, once per photo.
- Split (seed 0). Per dataset the identities (sorted) are shuffled with ``random.Random(0)``; the
  first half is the calibration split, the rest the test split (LFW 77 / 78, Yale B 19 / 19,
  Essex 9 / 9). Rules and thresholds were chosen on the calibration split only.
- Episodes (5 per split and number of photos enrolled, seeds 1000..1004). Per dataset 40 % of the
  split's identities are held back as strangers (43 strangers per episode: 31 + 8 + 4), the others
  are enrolled in one bank mixing the three datasets with ``k`` photos each (the first ``k`` of a
  seeded shuffle of their photos). Queries: every other photo of an enrolled person, every photo of
  a stranger.
- Figures, per dataset and pooled over the episodes: ``known`` = enrolled people's photos named
  with their own label; ``strangers`` = strangers' photos published ``unknown``. A photo where no
  face is found counts as not named (it would count as a rejected stranger; none occur).
- Rule: the agent's own (:func:`agent.vision.faces.BankIndex.match` with the quality verdict), at
  the thresholds given (default: the agent's defaults).

Usage: .venv/bin/python tools/eval_faces_open.py [--eval-dir DIR] [--cache FILE] [--fit]
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.models import load_manifest  # noqa: E402
from agent.pipelines.faces import FaceThresholds  # noqa: E402
from agent.vision.face_align import align_face  # noqa: E402
from agent.vision.face_decision import DecisionRule  # noqa: E402
from agent.vision.face_quality import QualityLimits, measure, verdict  # noqa: E402
from agent.vision.faces import UNKNOWN, BankIndex, FacePipeline  # noqa: E402
from agent.vision.runtime import OnnxModel  # noqa: E402

DATASETS = ("lfw_deepfunneled", "extended_yaleb_cropped", "essex_faces94_female")
SPLIT_SEED = 0
EPISODE_SEEDS = tuple(range(1000, 1005))
STRANGER_SHARE = 0.4
MARGIN = 1.0  # canvas margin, in units of the photo's long side
BARS = {1: (0.95, 0.97), 5: (0.98, 0.98)}  # photos enrolled: (known named, strangers rejected)


@dataclass
class Photos:
    """One embedding per photo (zeros where no face was found) and what the gate said."""

    dataset: list[str]
    identity: list[str]  # "<dataset>/<person>"
    vectors: np.ndarray  # (N, 128) float32
    found: np.ndarray  # (N,) bool
    quality: list[str | None]
    grey: np.ndarray  # (N,) bool


def photo_files(root: Path) -> Iterator[tuple[str, str, Path]]:
    for dataset in DATASETS:
        for person in sorted(p for p in (root / dataset).iterdir() if p.is_dir()):
            for path in sorted(person.iterdir()):
                yield dataset, f"{dataset}/{person.name}", path


def on_canvas(image: np.ndarray) -> np.ndarray:
    pad = round(MARGIN * max(image.shape[:2]))
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))


def pipeline(models_dir: Path) -> FacePipeline:
    manifest = load_manifest()
    detector = OnnxModel(manifest.get("retinaface"), models_dir)
    return FacePipeline(detector, "retinaface", OnnxModel(manifest.get("sface"), models_dir))


def embed_photos(root: Path, models_dir: Path, th: FaceThresholds | None = None) -> Photos:
    """Detect, gate and embed every photo of faces_open (the slow part: ~2-6 min on 2 cores)."""
    th = th or FaceThresholds()
    limits = QualityLimits(min_eyes=th.min_eyes, min_sharpness=th.min_sharpness)
    pipe = pipeline(models_dir)
    out = Photos([], [], np.zeros((0, 128), np.float32), np.zeros(0, bool), [], np.zeros(0, bool))
    vectors: list[np.ndarray] = []
    found: list[bool] = []
    grey: list[bool] = []
    for dataset, identity, path in photo_files(root):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {path}")
        frame = on_canvas(image)
        faces = pipe.detect(frame, th.detect, th.nms)
        out.dataset.append(dataset)
        out.identity.append(identity)
        if not faces:
            vectors.append(np.zeros(128, np.float32))
            found.append(False)
            grey.append(False)
            out.quality.append(None)
            continue
        cy, cx = frame.shape[0] / 2, frame.shape[1] / 2
        face = min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2)
        crop = align_face(frame, face.points, pipe.align_size)
        q = measure(face.points, face.score, crop)
        vectors.append(pipe.embed_crop(crop))
        found.append(True)
        grey.append(q.grey)
        out.quality.append(verdict(q, limits))
    out.vectors, out.found, out.grey = np.stack(vectors), np.array(found), np.array(grey)
    return out


def load_or_embed(root: Path, models_dir: Path, cache: Path | None) -> Photos:
    """:func:`embed_photos`, kept in ``cache`` (an .npz) between runs when one is given."""
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        quality = [None if q == "" else str(q) for q in z["quality"]]
        return Photos(list(z["dataset"]), list(z["identity"]), z["vectors"], z["found"], quality, z["grey"])
    photos = embed_photos(root, models_dir)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            dataset=np.array(photos.dataset),
            identity=np.array(photos.identity),
            vectors=photos.vectors,
            found=photos.found,
            quality=np.array([q or "" for q in photos.quality]),
            grey=photos.grey,
        )
    return photos


def split_identities(photos: Photos, seed: int = SPLIT_SEED) -> dict[str, dict[str, list[str]]]:
    """``{"calibration"|"test": {dataset: [identity, ...]}}``."""
    rng = random.Random(seed)
    parts: dict[str, dict[str, list[str]]] = {"calibration": {}, "test": {}}
    for dataset in DATASETS:
        people = sorted({i for d, i in zip(photos.dataset, photos.identity, strict=True) if d == dataset})
        rng.shuffle(people)
        half = len(people) // 2
        parts["calibration"][dataset], parts["test"][dataset] = people[:half], people[half:]
    return parts


@dataclass
class Episode:
    enrolled: list[int]  # photo indices in the bank
    labels: list[str]
    queries: list[int]
    truth: list[str | None]  # None = stranger
    strangers: int


def episode(photos: Photos, part: dict[str, list[str]], shots: int, seed: int) -> Episode:
    rng = random.Random(seed)
    by_person: dict[str, list[int]] = {}
    for k, identity in enumerate(photos.identity):
        by_person.setdefault(identity, []).append(k)
    ep = Episode([], [], [], [], 0)
    for dataset in DATASETS:
        people = list(part[dataset])
        rng.shuffle(people)
        held = round(STRANGER_SHARE * len(people))
        for n, person in enumerate(people):
            idx = list(by_person[person])
            rng.shuffle(idx)
            if n < held:
                ep.strangers += 1
                ep.queries += idx
                ep.truth += [None] * len(idx)
            else:
                ep.enrolled += idx[:shots]
                ep.labels += [person] * shots
                ep.queries += idx[shots:]
                ep.truth += [person] * (len(idx) - shots)
    return ep


@dataclass
class Tally:
    known: int = 0
    named: int = 0
    strangers: int = 0
    rejected: int = 0
    # (confidence, best identity is right) of every query, for the reliability table
    confidence: list[tuple[float, bool]] = field(default_factory=list)

    def rates(self) -> tuple[float, float]:
        return self.named / max(self.known, 1), self.rejected / max(self.strangers, 1)


def run_episode(photos: Photos, ep: Episode, rule: DecisionRule, tallies: dict[str, Tally]) -> None:
    """Decide every query of one episode with the agent's rule; add to the per-dataset tallies."""
    index = BankIndex(photos.vectors[ep.enrolled], ep.labels)
    for q, want in zip(ep.queries, ep.truth, strict=True):
        tally = tallies.setdefault(photos.dataset[q], Tally())
        label = UNKNOWN
        if photos.found[q]:
            m = index.match(photos.vectors[q], rule, photos.quality[q], bool(photos.grey[q]))
            label = m.label
            best = m.labels[int(np.argmax(m.scores))]
            tally.confidence.append((m.confidence, want is not None and best == want))
        if want is None:
            tally.strangers += 1
            tally.rejected += label == UNKNOWN
        else:
            tally.known += 1
            tally.named += label == want


def evaluate(photos: Photos, rule: DecisionRule) -> dict[tuple[str, int], dict[str, Tally]]:
    """``{(split, shots): {dataset: Tally}}`` over the protocol's episodes."""
    out: dict[tuple[str, int], dict[str, Tally]] = {}
    for split, part in split_identities(photos).items():
        for shots in BARS:
            tallies: dict[str, Tally] = {}
            for seed in EPISODE_SEEDS:
                run_episode(photos, episode(photos, part, shots, seed), rule, tallies)
            out[(split, shots)] = tallies
    return out


def report(results: dict[tuple[str, int], dict[str, Tally]]) -> list[str]:
    lines = []
    for (split, shots), tallies in results.items():
        bar_known, bar_rej = BARS[shots]
        for dataset in DATASETS:
            t = tallies[dataset]
            known, rejected = t.rates()
            ok = "ok" if known >= bar_known and rejected >= bar_rej else "MISSED"
            lines.append(
                f"{split:11s} {shots} photo(s) {dataset:24s} known {known:.3f} ({t.named}/{t.known})  "
                f"strangers rejected {rejected:.3f} ({t.rejected}/{t.strangers})  bar {bar_known}/{bar_rej} {ok}"
            )
    return lines


def reliability(results: dict[tuple[str, int], dict[str, Tally]], split: str) -> list[str]:
    """Is ``confidence`` a probability? Predicted vs observed share of right best identities."""
    pairs = [p for (s, _), tallies in results.items() if s == split for t in tallies.values() for p in t.confidence]
    conf = np.array([c for c, _ in pairs])
    right = np.array([r for _, r in pairs], float)
    lines = [f"confidence on the {split} split: Brier {float(np.mean((conf - right) ** 2)):.4f}"]
    edges = [0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0001]
    for lo, hi in itertools.pairwise(edges):
        sel = (conf >= lo) & (conf < hi)
        if sel.any():
            lines.append(
                f"  {lo:.2f}-{min(hi, 1):.2f}: n {int(sel.sum()):5d}  mean confidence {conf[sel].mean():.3f}  "
                f"right {right[sel].mean():.3f}"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    ap.add_argument("--models-dir", type=Path, default=REPO / "models")
    ap.add_argument("--cache", type=Path, default=None, help="keep the embeddings in this .npz")
    ap.add_argument("--match", type=float, default=None)
    ap.add_argument("--margin", type=float, default=None)
    ap.add_argument("--margin-grey", type=float, default=None)
    args = ap.parse_args()
    photos = load_or_embed(args.eval_dir / "faces_open", args.models_dir, args.cache)
    th = FaceThresholds()
    rule = DecisionRule(
        match=th.match if args.match is None else args.match,
        margin=th.margin if args.margin is None else args.margin,
        margin_grey=th.margin_grey if args.margin_grey is None else args.margin_grey,
    )
    gated = sum(q is not None for q in photos.quality)
    print(f"{len(photos.identity)} photos, no face found in {int((~photos.found).sum())}, quality-gated {gated}")
    print(f"rule: match {rule.match}, margin {rule.margin}, margin_grey {rule.margin_grey}")
    results = evaluate(photos, rule)
    print("\n".join(report(results)))
    for split in ("calibration", "test"):
        print("\n".join(reliability(results, split)))


if __name__ == "__main__":
    main()
