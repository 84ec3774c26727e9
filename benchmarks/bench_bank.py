"""Benchmark: int8 fastpath bank search vs NumPy float32 ``bank @ q`` argmax.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_bank.py [--repeats N]

Banks of 100,000 and 100 entries of 128-d vectors, top-1 cosine. Queries are noisy copies of bank
entries (like a re-seen face) plus, for the agreement figure, pure random queries (the hardest
case: near-ties everywhere). Contenders run alternately; median per query. Writes
benchmarks/results/bench_bank.json. Target: int8 100k ≥ 2x NumPy with ≥ 99 % top-1 agreement.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

import fastpath

HERE = Path(__file__).resolve().parent


def agreement(bank_i8: fastpath.Bank, unit: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]) -> float:
    idx, _ = fastpath.bank_search(queries, bank_i8, k=1)
    ref = np.argmax(queries @ unit.T, axis=1)
    return float((idx[:, 0] == ref).mean() * 100)


def run(n: int, d: int, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    vecs = rng.normal(size=(n, d)).astype(np.float32)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    banks = {dt: fastpath.make_bank(vecs, dt) for dt in ("int8", "float16", "float32")}
    near = unit[rng.integers(0, n, 200)] + rng.normal(0, 0.05, (200, d)).astype(np.float32)
    rand = rng.normal(size=(200, d)).astype(np.float32)
    queries = near[: min(50, len(near))]
    cases: dict[str, Callable[[npt.NDArray[np.float32]], object]] = {
        "numpy f32 bank@q": lambda q: int(np.argmax(unit @ q)),
        "fastpath int8": lambda q: fastpath.bank_search(q, banks["int8"]),
        "fastpath float16": lambda q: fastpath.bank_search(q, banks["float16"]),
        "fastpath float32": lambda q: fastpath.bank_search(q, banks["float32"]),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(repeats):
        q = queries[i % len(queries)]
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn(q)
            times[name].append(time.perf_counter() - t0)
    res = {f"{name} ms": statistics.median(ts) * 1e3 for name, ts in times.items()}
    res["agreement near %"] = agreement(banks["int8"], unit, near)
    res["agreement random %"] = agreement(banks["int8"], unit, rand)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=60)
    args = ap.parse_args()
    fastpath.set_implementation("cython")
    rng = np.random.default_rng(0)
    results = {}
    for n in (100_000, 100):
        r = run(n, 128, args.repeats if n > 1000 else args.repeats * 50, rng)
        results[str(n)] = r
        base = r["numpy f32 bank@q ms"]
        print(f"bank {n} x 128, top-1 cosine (median per query)")
        for key, val in r.items():
            if key.endswith(" ms"):
                print(f"  {key[:-3]:<20}{val:>10.4f} ms  {base / val:>6.2f}x vs numpy")
        print(f"  int8 top-1 agreement: near-duplicate queries {r['agreement near %']:.1f} %, "
              f"random queries {r['agreement random %']:.1f} %")  # fmt: skip
    out = {
        "benchmark": "bank_top1_128d",
        "implementation": fastpath.implementation(),
        "results": results,
        "target": "int8 100k >= 2x numpy float32, >= 99 % top-1 agreement",
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_bank.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
