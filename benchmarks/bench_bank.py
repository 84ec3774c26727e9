"""Benchmark: fastpath bank search (int8, float16, float32) vs NumPy float32 ``bank @ q`` argmax.

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_bank.py [--rounds N]

Banks of 100,000 and 100 entries of 128-d vectors (SFace's size), top-1 cosine, one query per
call (a face embedding). Queries are noisy copies of bank entries (a re-seen face); the top-1
agreement with NumPy float32 is also measured on pure random queries (the hardest case: near-ties
everywhere). Besides the raw kernels, "int8 + exact" is what the face matcher does
(agent/vision/faces.py ``BankIndex``): the int8 kernel's top 64 candidates, rescored exactly in
float32. Contenders run alternately; median per query. Writes benchmarks/results/bench_bank.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath
from agent.vision.faces import BankIndex
from benchmarks.common import Row, alternate, med, ms, report

F32 = npt.NDArray[np.float32]


def int8_exact_top1(q: F32, bank: fastpath.Bank, unit: F32) -> int:
    """The face matcher's search: int8 top-``BankIndex.TOP_K`` candidates, rescored exactly."""
    cand = fastpath.bank_search(q, bank, k=BankIndex.TOP_K)[0][0]
    return int(cand[int(np.argmax(unit[cand] @ q))])


def agreement(top1: Callable[[F32], int], unit: F32, queries: F32) -> float:
    """% of queries whose top-1 is NumPy float32's top-1."""
    got = np.array([top1(np.ascontiguousarray(q)) for q in queries])
    want = np.argmax(queries @ unit.T, axis=1)
    return float((got == want).mean() * 100)


def one_size(n: int, d: int, rounds: int, rng: np.random.Generator) -> dict[str, float]:
    vecs = rng.normal(size=(n, d)).astype(np.float32)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    banks = {dt: fastpath.make_bank(vecs, dt) for dt in ("int8", "float16", "float32")}
    near = (unit[rng.integers(0, n, 400)] + rng.normal(0, 0.05, (400, d))).astype(np.float32)
    rand = rng.normal(size=(400, d)).astype(np.float32)
    queries = [np.ascontiguousarray(q) for q in near[:64]]
    calls: dict[str, int] = {}

    def q(name: str) -> F32:
        """Each contender walks through the same queries, one a call."""
        calls[name] = calls.get(name, -1) + 1
        return queries[calls[name] % len(queries)]

    def raw(dtype: str) -> Callable[[F32], int]:
        return lambda x: int(fastpath.bank_search(x, banks[dtype])[0][0, 0])

    top1: dict[str, Callable[[F32], int]] = {
        "numpy f32": lambda x: int(np.argmax(unit @ x)),
        "fastpath int8": raw("int8"),
        "fastpath int8 + exact": lambda x: int8_exact_top1(x, banks["int8"], unit),
        "fastpath float16": raw("float16"),
        "fastpath float32": raw("float32"),
    }
    cases: dict[str, Callable[[], object]] = {
        name: (lambda name=name, fn=fn: fn(q(name)))  # type: ignore[misc]
        for name, fn in top1.items()
    }
    times = alternate(cases, rounds)
    res = {name: med(ts) for name, ts in times.items()}
    for name in ("fastpath int8", "fastpath int8 + exact", "fastpath float16"):
        res[f"{name} agreement near %"] = agreement(top1[name], unit, near)
        res[f"{name} agreement random %"] = agreement(top1[name], unit, rand)
    return res


def run(rounds: int = 60) -> tuple[list[Row], dict[str, object]]:
    fastpath.set_implementation("cython")
    rng = np.random.default_rng(0)
    big = one_size(100_000, 128, rounds, rng)
    small = one_size(100, 128, rounds * 50, rng)
    r_big = big["numpy f32"] / big["fastpath int8 + exact"]
    r_small = small["numpy f32"] / small["fastpath int8"]
    agree = min(big["fastpath int8 + exact agreement near %"], big["fastpath int8 + exact agreement random %"])
    rows = [
        Row(
            "bank",
            f"int8 bank 100,000x128 top-1, as the face matcher runs it (int8 top 64 → exact), vs NumPy f32 "
            f"(agreement {big['fastpath int8 + exact agreement near %']:.1f}% re-seen, "
            f"{big['fastpath int8 + exact agreement random %']:.1f}% random queries)",
            ms(big["fastpath int8 + exact"]),
            ms(big["numpy f32"]),
            r_big,
            ">= 2x, >= 99%",
            r_big >= 2.0 and agree >= 99.0,
        ),
        Row(
            "bank",
            f"the int8 kernel's own top-1 (agreement {big['fastpath int8 agreement near %']:.1f}% re-seen, "
            f"{big['fastpath int8 agreement random %']:.1f}% random)",
            ms(big["fastpath int8"]),
            ms(big["numpy f32"]),
            big["numpy f32"] / big["fastpath int8"],
            "report",
            None,
        ),
        Row(
            "bank",
            f"int8 bank 100x128 top-1 vs NumPy f32 (float32 bank {ms(small['fastpath float32'])})",
            ms(small["fastpath int8"]),
            ms(small["numpy f32"]),
            r_small,
            ">= 1x",
            r_small >= 1.0,
        ),
        Row(
            "bank",
            "float16 / float32 banks 100,000x128 vs NumPy f32",
            f"{ms(big['fastpath float16'])} / {ms(big['fastpath float32'])}",
            ms(big["numpy f32"]),
            big["numpy f32"] / big["fastpath float16"],
            "report",
            None,
            note="ratio is float16's; float32 is memory-bound like NumPy's BLAS",
        ),
    ]
    return rows, {"100000": big, "100": small, "simd": fastpath.simd_level()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    rows, details = run(args.rounds)
    report("bench_bank", rows, details)


if __name__ == "__main__":
    main()
