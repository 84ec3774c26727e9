"""Classifier on natural photos: COCO-crop few-shot episodes, open set, learn, and COIL-20.

Protocol (what the README and tests/accuracy quote)
    Crops: every non-crowd object of ``coco128/instances.json`` whose box is at least 64 px on its
    shorter side, cut from its image by the agent's own box crop (``FeatureExtractor.extract(image,
    box)``: the box, then the centre "cover" square). Categories: the 15 with at least 6 such crops.
    Episode ``s`` (seeded ``numpy.random.default_rng(s)``, s = 0 … N-1): a permutation of the 15
    categories; the first 5 are **taught** (5 random crops each become ``add_class`` views, up to 5
    further crops each are **queries**), one random crop of each of the next 5 is an **untaught**
    query. Closed-set figures are means over episodes of the fraction of taught queries named right;
    open-set figures pool every episode's queries under one threshold (a threshold is one setting):
    for each fraction of untaught queries rejected, the fraction of taught queries both accepted and
    right. ``learn``: the episode's taught queries and its 5 untaught crops go in as unlabelled
    ``add_sample``s (shuffled), then ``learn``; the gain is the paired mean difference with its
    standard error. COIL-20: 20-way, k views of each object taught, the other views queried
    (``tools/eval_fewshot.py``'s split, seeds 0 … 19).

    .venv/bin/python tools/eval_classifier.py [--episodes 200] [--model mobilenet_v2]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.models.manifest import load_manifest  # noqa: E402
from agent.vision.class_policy import DEFAULT_MIN_SIMILARITY, ClassPolicy, unit_rows  # noqa: E402
from agent.vision.classifier import SelfLearnClassifier, default_max_distance, pairwise_l2  # noqa: E402
from agent.vision.features import FeatureExtractor  # noqa: E402
from agent.vision.runtime import OnnxModel  # noqa: E402
from tools.eval_fewshot import load_coil20, split  # noqa: E402

MIN_SIDE = 64
MIN_CROPS = 6
WAYS = 5
SHOTS = 5
QUERIES = 5
REJECTED = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
BASELINE = {0.5: 0.75, 0.7: 0.68}  # issue 12: a plain cosine-centroid threshold


@dataclass(frozen=True)
class Crop:
    image: str
    box: tuple[float, float, float, float]
    category: str


def coco_crops(folder: Path) -> list[Crop]:
    """The protocol's crops, in annotation id order."""
    doc = json.loads((folder / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    files = {i["id"]: i["file_name"] for i in doc["images"]}
    anns = sorted(
        (a for a in doc["annotations"] if not a.get("iscrowd") and min(a["bbox"][2:]) >= MIN_SIDE),
        key=lambda a: a["id"],
    )
    counts = collections.Counter(names[a["category_id"]] for a in anns)
    return [
        Crop(str(folder / "images" / files[a["image_id"]]), tuple(a["bbox"]), names[a["category_id"]])
        for a in anns
        if counts[names[a["category_id"]]] >= MIN_CROPS
    ]


@dataclass(frozen=True)
class Episode:
    taught: list[int]  # category index of each taught class
    support: list[np.ndarray]  # crop indices, per taught class
    queries: np.ndarray  # crop indices of the taught queries
    truth: np.ndarray  # 0..WAYS-1 per taught query
    untaught: np.ndarray  # one crop index per untaught category


def episode(labels: np.ndarray, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    cats = rng.permutation(int(labels.max()) + 1)
    support, queries, truth = [], [], []
    for k, c in enumerate(cats[:WAYS]):
        idx = rng.permutation(np.flatnonzero(labels == c))
        support.append(idx[:SHOTS])
        queries.extend(idx[SHOTS : SHOTS + QUERIES].tolist())
        truth.extend([k] * len(idx[SHOTS : SHOTS + QUERIES]))
    untaught = np.asarray([rng.choice(np.flatnonzero(labels == c)) for c in cats[WAYS : 2 * WAYS]])
    return Episode(cats[:WAYS].tolist(), support, np.asarray(queries), np.asarray(truth), untaught)


def build(feats: np.ndarray, ep: Episode, policy: ClassPolicy, learn: bool, seed: int) -> SelfLearnClassifier:
    clf = SelfLearnClassifier(feats.shape[1], policy=policy)
    for k, rows in enumerate(ep.support):
        for r in rows:
            clf.add_class(f"c{k}", feats[r])
    if learn:
        pool = np.random.default_rng(10_000 + seed).permutation(np.concatenate([ep.queries, ep.untaught]))
        for r in pool:
            clf.add_sample(feats[r])
        clf.learn()
    return clf


def cosine_centroid(feats: np.ndarray, ep: Episode, rows: np.ndarray) -> np.ndarray:
    centres = unit_rows(np.stack([unit_rows(feats[s]).mean(0) for s in ep.support]))
    cos: np.ndarray = unit_rows(feats[rows]) @ centres.T
    return cos


@dataclass
class Pooled:
    """Per query of every episode: best similarity and whether the best class is right."""

    known: list[np.ndarray]
    right: list[np.ndarray]
    untaught: list[np.ndarray]

    def curve(self, rejected: float) -> tuple[float, float]:
        un = np.concatenate(self.untaught)
        t = float(np.quantile(un, rejected))
        return t, float(((np.concatenate(self.known) > t) & np.concatenate(self.right)).mean())

    def point(self, t: float) -> tuple[float, float]:
        """(untaught rejected, taught right) at threshold ``t`` (accept when similarity >= t)."""
        un = np.concatenate(self.untaught)
        return float((un < t).mean()), float(((np.concatenate(self.known) >= t) & np.concatenate(self.right)).mean())


def coco_report(feats: np.ndarray, labels: np.ndarray, episodes: int, policy: ClassPolicy) -> dict[str, float]:
    acc: dict[str, list[float]] = collections.defaultdict(list)
    pol, base, pol_learn = Pooled([], [], []), Pooled([], [], []), Pooled([], [], [])
    old_rule: list[tuple[float, float]] = []
    for s in range(episodes):
        ep = episode(labels, s)
        q, y = feats[ep.queries], ep.truth
        views = [feats[r] for r in ep.support]
        acc["raw-L2 nearest view (MaixPy ranking)"].append(float((pairwise_classes(q, views).argmin(1) == y).mean()))
        centres = np.stack([v.mean(0) for v in views])
        acc["raw-L2 centroid"].append(float((pairwise_l2(q, centres).argmin(1) == y).mean()))
        cc = cosine_centroid(feats, ep, ep.queries)
        acc["cosine centroid"].append(float((cc.argmax(1) == y).mean()))
        ccu = cosine_centroid(feats, ep, ep.untaught)
        base.known.append(cc.max(1))
        base.right.append(cc.argmax(1) == y)
        base.untaught.append(ccu.max(1))
        for learn, pooled, tag in ((False, pol, ""), (True, pol_learn, " + learn")):
            clf = build(feats, ep, policy, learn, s)
            sims = clf.similarities(q)
            acc[f"policy best class{tag}"].append(float((sims.argmax(1) == y).mean()))
            published = [r.class_id for r in clf.classify_batch(q)]
            acc[f"published label at the defaults{tag}"].append(float(np.mean(np.asarray(published) == y)))
            pooled.known.append(sims.max(1))
            pooled.right.append(sims.argmax(1) == y)
            pooled.untaught.append(clf.similarities(feats[ep.untaught]).max(1))
        old = SelfLearnClassifier(feats.shape[1], policy=ClassPolicy("max_distance", policy.max_distance))
        for k, rows in enumerate(ep.support):
            for r in rows:
                old.add_class(f"c{k}", feats[r])
        kn = [r.class_id for r in old.classify_batch(q)]
        un = [r.class_id for r in old.classify_batch(feats[ep.untaught])]
        old_rule.append((float(np.mean(np.asarray(un) < 0)), float(np.mean(np.asarray(kn) == y))))
    print(f"  closed set, {episodes} episodes (mean ± std over episodes):")
    for name, vals in acc.items():
        print(f"    {name:42s} {np.mean(vals):.4f} ± {np.std(vals):.4f}")
    gain = np.asarray(acc["policy best class + learn"]) - np.asarray(acc["policy best class"])
    print(f"    learn gain (best class, paired): {gain.mean():+.4f} ± {gain.std() / np.sqrt(len(gain)):.4f} (s.e.)")
    pub = np.asarray(acc["published label at the defaults + learn"]) - np.asarray(
        acc["published label at the defaults"]
    )
    print(f"    learn gain (published label, paired): {pub.mean():+.4f} ± {pub.std() / np.sqrt(len(pub)):.4f} (s.e.)")
    print("  open set: untaught rejected → taught named right (one threshold over all episodes)")
    print("    rejected | cosine centroid | policy          | policy + learn  | issue-12 baseline")
    for r in REJECTED:
        (tb, b), (tp, p), (tl, pl) = base.curve(r), pol.curve(r), pol_learn.curve(r)
        ref = f"{BASELINE[r]:.2f}" if r in BASELINE else ""
        print(f"    {r:8.0%} | {b:.3f} (t {tb:.3f}) | {p:.3f} (t {tp:.3f}) | {pl:.3f} (t {tl:.3f}) | {ref}")
    rej, right = pol.point(policy.min_similarity)
    print(f"  default min_similarity {policy.min_similarity}: untaught rejected {rej:.3f}, taught right {right:.3f}")
    rej_l, right_l = pol_learn.point(policy.min_similarity)
    print(f"    after learn: untaught rejected {rej_l:.3f}, taught right {right_l:.3f}")
    o_rej, o_right = np.mean([a for a, _ in old_rule]), np.mean([b for _, b in old_rule])
    print(f"  old rule max_distance {policy.max_distance}: untaught rejected {o_rej:.3f}, taught right {o_right:.3f}")
    return {k: float(np.mean(v)) for k, v in acc.items()}


def pairwise_classes(q: np.ndarray, views: list[np.ndarray]) -> np.ndarray:
    return np.stack([pairwise_l2(q, v).min(1) for v in views], axis=1)


def coil_report(feats: np.ndarray, labels: np.ndarray, episodes: int, policy: ClassPolicy) -> None:
    for k in (1, 5):
        rank, best = [], []
        for s in range(episodes):
            sup, qry = split(labels, k, s)
            clf = SelfLearnClassifier(feats.shape[1], policy=policy)
            for r in sup:
                clf.add_class(f"obj{labels[r]}", feats[r])
            rank.append(float((clf.distances(feats[qry]).argmin(1) == labels[qry]).mean()))
            best.append(float((clf.similarities(feats[qry]).argmax(1) == labels[qry]).mean()))
        print(f"  COIL-20 {k}-shot 20-way: ranking first (raw L2) {np.mean(rank):.4f}, policy best {np.mean(best):.4f}")
    tr = []
    for s in range(episodes):
        sup, qry = split(labels, 1, s)
        clf = SelfLearnClassifier(feats.shape[1], policy=policy)
        for r in sup:
            clf.add_class(f"obj{labels[r]}", feats[r])
        for r in qry:
            clf.add_sample(feats[r])
        clf.learn()
        tr.append(float((clf.similarities(feats[qry]).argmax(1) == labels[qry]).mean()))
    print(f"  COIL-20 1-shot + learn (the other views as samples): policy best {np.mean(tr):.4f}")


def main(argv: list[str] | None = None) -> int:
    default_eval = Path(os.environ.get("MAIX_AGENT_EVAL_DIR", REPO.parent / "shared" / "eval"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=default_eval)
    ap.add_argument("--models-dir", type=Path, default=REPO / "models")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--coil-episodes", type=int, default=20)
    ap.add_argument("--min-similarity", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    fx = FeatureExtractor(OnnxModel(load_manifest().get(args.model), args.models_dir, args.threads))
    crops = coco_crops(args.eval_dir / "coco128")
    cats = sorted({c.category for c in crops})
    labels = np.asarray([cats.index(c.category) for c in crops])
    images: dict[str, np.ndarray] = {}
    for c in crops:
        if c.image not in images:
            img = cv2.imread(c.image)
            if img is None:
                raise SystemExit(f"cannot read {c.image}")
            images[c.image] = img
    feats = fx.extract_batch([images[c.image] for c in crops], [c.box for c in crops])
    policy = ClassPolicy(
        "similarity",
        default_max_distance(args.model),
        args.min_similarity if args.min_similarity is not None else DEFAULT_MIN_SIMILARITY[args.model],
    )
    print(f"{args.model}: {len(crops)} COCO crops (shorter side >= {MIN_SIDE} px) of {len(cats)} categories")
    print(f"  {', '.join(f'{c} {int((labels == i).sum())}' for i, c in enumerate(cats))}")
    coco_report(feats, labels, args.episodes, policy)
    frames, coil_labels = load_coil20(args.eval_dir / "fewshot" / "coil20")
    coil_report(fx.extract_batch(frames), coil_labels, args.coil_episodes, policy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
