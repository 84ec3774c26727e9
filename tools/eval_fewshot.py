"""Few-shot evaluation of the self-learning classifier on COIL-20 (../shared/eval/fewshot/coil20).

20-way episodes: k random views of every object become ``add_class`` views, every other view is
classified; accuracy is averaged over seeded episodes, for 1-shot and 5-shot and each feature
model. Also measured: ``learn()`` with the remaining views as unlabelled samples (transductive
1-shot), the distance distributions behind the default ``max_distance``, and per-frame time of
``extract`` on a 640x480 frame (model only vs end to end).

    .venv/bin/python tools/eval_fewshot.py [--episodes 20] [--models mobilenet_v2 efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.models.manifest import load_manifest  # noqa: E402
from agent.vision.classifier import SelfLearnClassifier, default_max_distance, pairwise_l2  # noqa: E402
from agent.vision.features import FeatureExtractor, preprocess  # noqa: E402
from agent.vision.runtime import OnnxModel  # noqa: E402

NAME = re.compile(r"obj(\d+)__(\d+)\.png$")


def load_coil20(folder: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Grey 32x32 PNGs → 3-channel BGR frames (what the agent receives) and 0-based object ids."""
    items: list[tuple[int, int, Path]] = []
    for p in folder.iterdir():
        m = NAME.search(p.name)
        if m:
            items.append((int(m.group(1)), int(m.group(2)), p))
    if not items:
        raise SystemExit(f"no obj<k>__<view>.png files in {folder}")
    items.sort()
    frames = []
    for _, _, p in items:
        grey = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise SystemExit(f"cannot read {p}")
        frames.append(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    objs = sorted({o for o, _, _ in items})
    labels = np.asarray([objs.index(o) for o, _, _ in items], dtype=np.int64)
    return frames, labels


def split(labels: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    support: list[int] = []
    query: list[int] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        support.extend(idx[:k].tolist())
        query.extend(idx[k:].tolist())
    return np.asarray(support), np.asarray(query)


def episode(
    feats: np.ndarray,
    labels: np.ndarray,
    k: int,
    seed: int,
    max_distance: float,
    transductive: bool = False,
    rule: str = "views",
) -> tuple[float, int]:
    """One 20-way k-shot episode → (accuracy, learn epochs). rule "mean": one averaged view."""
    support, query = split(labels, k, seed)
    clf = SelfLearnClassifier(feats.shape[1], max_distance=max_distance)
    for c in np.unique(labels):
        rows = feats[support[labels[support] == c]]
        for row in rows if rule == "views" else rows.mean(0, keepdims=True):
            clf.add_class(f"obj{c + 1}", row)
    epochs = 0
    if transductive:
        for row in feats[query]:
            clf.add_sample(row)
        epochs = clf.learn()
    pred = clf.distances(feats[query]).argmin(axis=1)
    return float((pred == labels[query]).mean()), epochs


def distance_report(feats: np.ndarray, labels: np.ndarray) -> None:
    d = pairwise_l2(feats, feats)
    same = labels[:, None] == labels[None, :]
    iu = np.triu_indices(len(labels), 1)
    pct = [5, 25, 50, 75, 95]
    print(f"    feature norm mean {np.linalg.norm(feats, axis=1).mean():.2f}")
    print(f"    same-object pairs   p{pct}: {np.percentile(d[iu][same[iu]], pct).round(2)}")
    print(f"    diff-object pairs   p{pct}: {np.percentile(d[iu][~same[iu]], pct).round(2)}")
    adj = [d[i, i + 1] for i in range(len(labels) - 1) if labels[i] == labels[i + 1]]
    print(f"    adjacent views      p{pct}: {np.percentile(adj, pct).round(2)}")


def open_set(feats: np.ndarray, labels: np.ndarray, k: int, episodes: int) -> None:
    """Enrol 10 objects, show all 20: best distance of known vs unknown objects."""
    known_d: list[float] = []
    unknown_d: list[float] = []
    for s in range(episodes):
        rng = np.random.default_rng(s)
        objs = rng.permutation(np.unique(labels))
        sup: list[int] = []
        qry: list[int] = []
        for c in objs[:10]:
            idx = rng.permutation(np.flatnonzero(labels == c))
            sup.extend(idx[:k].tolist())
            qry.extend(idx[k:].tolist())
        unk = np.flatnonzero(np.isin(labels, objs[10:]))
        known_d.extend(pairwise_l2(feats[qry], feats[sup]).min(1).tolist())
        unknown_d.extend(pairwise_l2(feats[unk], feats[sup]).min(1).tolist())
    kn, un = np.asarray(known_d), np.asarray(unknown_d)
    cells = ", ".join(f"{t}: {(kn <= t).mean():.2f}/{(un > t).mean():.2f}" for t in (10, 12, 14, 16, 18, 20))
    print(f"    open set {k}-shot, threshold: known kept/unknown rejected  {cells}")


def photo_report(fx: FeatureExtractor, images: Path) -> None:
    names = [
        "motorcycle_left.png",
        "motorcycle_right.png",
        "chelsea.png",
        "coffee.png",
        "astronaut.png",
        "rocket.jpg",
        "bus.jpg",
        "zidane.jpg",
    ]
    frames: list[np.ndarray] = []
    for n in names:
        img = cv2.imread(str(images / n))
        if img is None:
            print(f"    (photo {n} missing)")
            return
        frames.append(img)
    g = fx.extract_batch(frames)
    d = pairwise_l2(g, g)
    iu = np.triu_indices(len(names), 1)
    others = d[iu][1:]  # every pair except (left, right)
    print(
        f"    photos: motorcycle left/right {d[0, 1]:.2f}; unrelated pairs "
        f"min {others.min():.2f} median {np.median(others):.2f} max {others.max():.2f}"
    )


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def timing(fx: FeatureExtractor, runs: int = 30) -> None:
    """Median per-frame times on a 640x480 frame (medians: the host may be shared)."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    x = preprocess(frame, fx.spec)[None]
    for _ in range(3):
        fx.extract(frame)
    model = _median_ms(lambda: fx.run(x), runs)
    prep = _median_ms(lambda: preprocess(frame, fx.spec), runs)
    full = _median_ms(lambda: fx.extract(frame), runs)
    print(
        f"    640x480 frame (median of {runs}): model only {model:.1f} ms, "
        f"preprocess {prep:.2f} ms, extract end to end {full:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    default_eval = Path(os.environ.get("MAIX_AGENT_EVAL_DIR", REPO.parent / "shared" / "eval"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=default_eval)
    ap.add_argument("--models-dir", type=Path, default=REPO / "models")
    ap.add_argument("--models", nargs="+", default=["mobilenet_v2", "efficientnet_lite0"])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    frames, labels = load_coil20(args.eval_dir / "fewshot" / "coil20")
    print(
        f"COIL-20: {len(frames)} views of {len(np.unique(labels))} objects, "
        f"{frames[0].shape[1]}x{frames[0].shape[0]} grey → BGR; {args.episodes} episodes"
    )
    manifest = load_manifest()
    for name in args.models:
        fx = FeatureExtractor(OnnxModel(manifest.get(name), args.models_dir, args.threads))
        t0 = time.perf_counter()
        feats = fx.extract_batch(frames)
        print(f"\n{name}: extracted {feats.shape} in {time.perf_counter() - t0:.1f} s")
        md = default_max_distance(name)
        seeds = range(args.episodes)
        for k in (1, 5):
            views = [episode(feats, labels, k, s, md)[0] for s in seeds]
            line = f"    {k}-shot 20-way, nearest view (L2 raw): {np.mean(views):.4f} ± {np.std(views):.4f}"
            if k > 1:
                means = [episode(feats, labels, k, s, md, rule="mean")[0] for s in seeds]
                line += f"; one mean vector per class (MaixPy-style): {np.mean(means):.4f}"
            print(line)
        tr = [episode(feats, labels, 1, s, md, transductive=True) for s in seeds]
        print(
            f"    1-shot + learn() with the {len(frames) - 20} other views as samples: "
            f"{np.mean([a for a, _ in tr]):.4f} (epochs mean {np.mean([e for _, e in tr]):.1f})"
        )
        distance_report(feats, labels)
        for k in (1, 5):
            open_set(feats, labels, k, args.episodes)
        photo_report(fx, args.eval_dir / "images")
        print(f"    default max_distance: {md}")
        timing(fx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
