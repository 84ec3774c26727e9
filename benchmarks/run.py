"""Run every benchmark against its named peer and print the results table (``make bench``).

    .venv/bin/python benchmarks/run.py [--quick]
        [--only preprocess bank faces frame track pipelines agent framepath preview]
                                       [--threads N]

Each section runs its contenders alternately in the same process and reports medians (see the
section modules: bench_preprocess, bench_bank, bench_faces, bench_track, bench_pipelines,
bench_agent, bench_framepath). The table shows the agent's figure, the peer's, the ratio as the bar reads it, the
bar and whether it is met on this machine in this run. Everything is also written to
benchmarks/results/run.json (git-ignored), with the machine and its load average, which matters:
on a shared machine absolute times drift, ratios measured alternately much less.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    bench_agent,
    bench_bank,
    bench_faces,
    bench_frame,
    bench_framepath,
    bench_pipelines,
    bench_preprocess,
    bench_preview,
    bench_track,
)
from benchmarks.common import RESULTS, Row, machine

SECTIONS = ("preprocess", "bank", "faces", "frame", "track", "pipelines", "agent", "framepath", "preview")


def _run_section(name: str, quick: bool, threads: int) -> tuple[list[Row], dict[str, Any]]:
    if name == "preprocess":
        return bench_preprocess.run(150 if quick else 600)
    if name == "bank":
        return bench_bank.run(20 if quick else 80)
    if name == "faces":
        return bench_faces.run(15 if quick else 60, (1, 2))  # the bars are at 1 and at 2 threads
    if name == "frame":
        return bench_frame.run(10 if quick else 40)
    if name == "track":
        return bench_track.run(1 if quick else 2, threads)
    if name == "pipelines":
        return bench_pipelines.run(15 if quick else 60, threads)
    if name == "framepath":
        return bench_framepath.run(30 if quick else 100)
    if name == "agent":
        return bench_agent.run(200 if quick else 1000, 4.0 if quick else 10.0)
    if name == "preview":
        return bench_preview.run(4.0 if quick else 5.0, 2 if quick else 8)
    raise ValueError(name)


def table(rows: list[Row]) -> str:
    heads = ("what", "agent", "peer", "ratio", "bar", "met")
    cells = [
        (
            f"[{r.section}] {r.what}",
            r.agent,
            r.peer,
            "" if r.ratio is None else (f"{r.ratio:.2f} ms" if "ms" in r.bar else f"{r.ratio:.2f}x"),
            r.bar,
            {True: "yes", False: "NO", None: "-"}[r.met],
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    widths[0] = min(widths[0], 110)
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for c in cells:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
    notes = [f"  - [{r.section}] {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, noisier)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="onnxruntime / OpenCV threads of the in-process runs (1: on a shared machine two spinning "
        "threads a session measure the neighbours more than the code)",
    )
    args = ap.parse_args()
    rows: list[Row] = []
    details: dict[str, Any] = {}
    started = time.time()
    for name in args.only:
        t0 = time.perf_counter()
        print(f"== {name} …", flush=True)
        try:
            section_rows, details[name] = _run_section(name, args.quick, args.threads)
        except Exception as exc:  # one broken section must not cost the others' figures
            traceback.print_exc()
            details[name] = {"error": repr(exc)}
            rows.append(Row(name, f"section failed: {exc!r}", "", "", None, "", False))
            continue
        rows += section_rows
        print(f"   done in {time.perf_counter() - t0:.0f} s", flush=True)
    info = machine()
    print()
    print(
        f"maix-agent benchmarks — {info['cpus']} CPUs, load average {info['load_average_1m']} (1 min), "
        f"Python {info['python']}, OpenCV {info['opencv']}, in-process threads {args.threads}"
    )
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    out = {
        "started": started,
        "machine": info,
        "threads": args.threads,
        "quick": args.quick,
        "rows": [r.as_dict() for r in rows],
        "details": details,
    }
    (RESULTS / "run.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"\nwritten: {RESULTS / 'run.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
