"""bank/reembed: re-embedding a faces bank from its stored crops vs enrolling it again from photos.

What a user of Double Take / Frigate does after a model change is run every training photo
through the whole pipeline again (detect, align, embed); the agent re-embeds the aligned
crops it kept (decode a ~4 KiB JPEG, embed), through the very job ``bank/reembed`` runs
(:class:`agent.pipelines.reembed.Reembed`, durable batched writes included). Both on the same
N LFW photos (../shared/eval/faces_open), alternately, ``--rounds`` times; the agent's crops
are made once beforehand by enrolling those photos. Also reported: how close the re-embedded
vectors are to the vectors of the uncompressed crops (cosine).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.bank.clock import HLC
from agent.bank.store import EntryBank
from agent.models import load_manifest
from agent.pipelines.reembed import Reembed
from agent.vision.face_crops import encode_crop
from agent.vision.faces import FacePipeline
from agent.vision.runtime import OnnxModel
from benchmarks.common import EVAL, MODELS, Row, load_bgr, med, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    m = load_manifest()
    detector = OnnxModel(m.get("retinaface"), MODELS, args.threads)
    pipe = FacePipeline(detector, "retinaface", OnnxModel(m.get("sface"), MODELS, args.threads))
    root = EVAL / "faces_open" / "lfw_deepfunneled"
    photos = [p for who in sorted(root.iterdir()) for p in sorted(who.iterdir())[:2]][: args.samples]
    images = [load_bgr(p) for p in photos]
    tmp = Path(tempfile.mkdtemp(prefix="bench-reembed-"))
    old = EntryBank("faces", "aaaaaaaaaaaa", 128, tmp, HLC("bench"), "bench")
    items = []
    for img in images:
        face = max(pipe.detect(img), key=lambda f: f.area)
        crop = pipe.align(img, face)
        items.append(("p", pipe.embed(img, face), encode_crop(crop), False))
    made = old.add_samples(items)

    def reembed(k: int) -> float:
        bank = EntryBank("faces", f"b{k:011d}", 128, tmp, HLC("bench"), "bench")
        job = Reembed(SimpleNamespace(bank=bank, pipeline=pipe))  # type: ignore[arg-type]
        t = time.perf_counter()
        job.start()
        job.wait()
        dt = time.perf_counter() - t
        assert job.state()["added"] == len(made), job.state()
        bank.path.unlink()  # not a source of the next round
        reembed.last = bank  # type: ignore[attr-defined]
        return dt

    def enrol_again() -> float:
        t = time.perf_counter()
        for img in images:
            face = max(pipe.detect(img), key=lambda f: f.area)
            pipe.embed(img, face)
        return time.perf_counter() - t

    times: dict[str, list[float]] = {"reembed": [], "enrol": []}
    for r in range(args.rounds):
        order = ["reembed", "enrol"] if r % 2 == 0 else ["enrol", "reembed"]
        for name in order:
            seconds = reembed(r) if name == "reembed" else enrol_again()
            times[name].append(seconds * 1000 / len(made))
    bank: Any = reembed.last  # type: ignore[attr-defined]
    cos = [float(bank.get(e.id).vector() @ e.vector()) for e in made]
    a, p = med(times["reembed"]), med(times["enrol"])
    sizes = [len(e.crop) for e in made]
    rows = [
        Row(
            "reembed",
            f"bank/reembed {len(made)} LFW samples from their crops vs enrolling the photos again (per sample)",
            f"{a:.1f} ms",
            f"{p:.1f} ms",
            p / a,
            "report",
            None,
            note=f"crops {min(sizes)}-{max(sizes)} B; cos(re-embedded, original) "
            f"min {min(cos):.4f} mean {np.mean(cos):.4f}",
        )
    ]
    report("reembed", rows, {"times_ms": times, "samples": len(made)})


if __name__ == "__main__":
    main()
