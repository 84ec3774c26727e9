"""Choose the engine and thread count of every model by measuring them on this machine.

:func:`tune` times each model on each engine (:data:`agent.vision.runtime.ENGINES`) and thread
count (1, 2), and on onnxruntime with 2 threads also with its workers spinning while it runs
(``+spin``), on realistic inputs (``agent.models.probes``). Each round runs every candidate
twice, in orders shuffled every round: once *cold*, after the cores idled for :data:`IDLE_S`
(what a 30 fps camera leaves between frames, and what the first model of a frame meets), and
once *warm*, right after another candidate ran (a model that follows another in a frame, or
frames back to back). The medians of both are kept, and a candidate's cost is their sum: the
two regimes rank the candidates differently (spinning workers: much faster warm, and on some
machines slower cold). An engine is eligible only when its *decoded* results match the
reference engine's (onnxruntime) within the probe's stated tolerance. Results are cached in a
JSON file keyed by the machine (CPU model and flags), the engines' versions, whether workers
are pinned, and each model's sha256; any change there makes the entry stale and it is measured
again. :func:`choose` turns the measurements into a :class:`Choice` per model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from agent.errors import ModelError
from agent.models.manifest import Manifest

if TYPE_CHECKING:
    from agent.vision.runtime import Spin

log = logging.getLogger(__name__)

REFERENCE = "onnxruntime"
THREADS = (1, 2)
IDLE_S = 0.020  # idle cores before a cold run
BUDGET_S = 2.0  # timing budget per model: rounds = budget / the cost of one round, 5..15
MAX_ROUNDS = 15
CACHE_VERSION = 2  # 2: cold and warm medians, "+spin" candidates
SpinSetting = Literal["auto", "never", "run", "always"]
Progress = Callable[[str], None]


def machine_key() -> dict[str, Any]:
    """What makes a measurement belong to this machine: CPU model and flags, core count."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "uarch") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features", "isa") and not flags:
                flags = value.strip()
    except OSError:
        pass
    return {
        "arch": platform.machine(),
        "cpu": model,
        "flags_sha256": hashlib.sha256(flags.encode()).hexdigest()[:16],
        "cpus": os.cpu_count(),
    }


def key(engine: str, threads: int, spin: Spin = "never") -> str:
    """A candidate's name: ``onnxruntime/2``, ``onnxruntime/2+spin`` (workers spin while it runs)."""
    return f"{engine}/{threads}" + ("+spin" if spin == "run" else "")


def forced_spin(spin: SpinSetting) -> Spin:
    """What ``models.spin`` forces on every onnxruntime model (``auto`` forces nothing: never)."""
    return "never" if spin == "auto" else spin


def spin_of(engine: str, threads: int, spin: Spin) -> Spin:
    """What a model's workers do under ``spin``: only onnxruntime with a worker (threads > 1) spins."""
    return spin if engine == REFERENCE and threads > 1 else "never"


def parse_key(name: str) -> tuple[str, int, Spin]:
    base, _, extra = name.partition("+")
    engine, _, threads = base.partition("/")
    return engine, int(threads), "run" if extra == "spin" else "never"


def candidates() -> list[tuple[str, int, Spin]]:
    """(engine, threads, spin) of every candidate: spinning only where there is a worker to spin."""
    from agent.vision.runtime import ENGINES

    out: list[tuple[str, int, Spin]] = []
    for e in ENGINES:
        for t in THREADS:
            out.append((e, t, "never"))
            if e == REFERENCE and t > 1:
                out.append((e, t, "run"))
    return out


@dataclass
class ModelTune:
    """One model's measurements: median ms per candidate (:func:`key`) warm (``ms``) and cold
    (``ms_cold``), and each engine's check."""

    name: str
    sha256: str
    ms: dict[str, float]
    checks: dict[str, dict[str, Any]]
    rounds: int = 0
    seconds: float = 0.0
    tuned_at: float = field(default_factory=time.time)
    ms_cold: dict[str, float] = field(default_factory=dict)

    def eligible(self, engine: str) -> bool:
        return engine == REFERENCE or bool(self.checks.get(engine, {}).get("ok"))

    def cost(self, candidate: str) -> float:
        """Warm + cold median ms (warm twice when there is no cold one)."""
        warm = self.ms[candidate]
        return warm + self.ms_cold.get(candidate, warm)


@dataclass(frozen=True)
class Choice:
    engine: str
    threads: int
    source: str  # "tuned" | "forced" | "default"
    ms: Mapping[str, float] = field(default_factory=dict)
    spin: Spin = "never"
    ms_cold: Mapping[str, float] = field(default_factory=dict)

    @property
    def candidate(self) -> str:
        """The chosen candidate's name (:func:`key`): ``onnxruntime/2+spin``, ``opencv/1`` …"""
        return key(self.engine, self.threads, self.spin)

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "threads": self.threads,
            "spin": self.spin,
            "source": self.source,
            "ms": dict(self.ms),
            "ms_cold": dict(self.ms_cold),
        }


class TuneCache:
    """The measurements on disk (one JSON file, written atomically), made with workers pinned
    (``pin``) or not."""

    def __init__(self, path: Path, pin: bool = True) -> None:
        self.path = path
        self.pin = pin
        self.header = {"version": CACHE_VERSION, "machine": machine_key(), "engines": _engine_versions(), "pin": pin}
        self.models: dict[str, ModelTune] = {}
        self.stale_reason = ""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            self.stale_reason = "no cache"
            return
        except (OSError, ValueError) as exc:
            self.stale_reason = f"unreadable cache ({exc})"
            return
        for part in ("version", "machine", "engines", "pin"):
            if data.get(part) != self.header[part]:
                self.stale_reason = f"{part} changed"
                return
        for name, raw in data.get("models", {}).items():
            try:
                self.models[name] = ModelTune(**raw)
            except TypeError:
                continue

    def get(self, name: str, sha256: str) -> ModelTune | None:
        entry = self.models.get(name)
        return entry if entry is not None and entry.sha256 == sha256 else None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {**self.header, "models": {n: vars(t) for n, t in sorted(self.models.items())}}
        fd, tmp = tempfile.mkstemp(prefix=".engines-", dir=self.path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh, indent=1)
        os.replace(tmp, self.path)


def _engine_versions() -> dict[str, str]:
    from agent.vision.runtime import engine_versions

    return engine_versions()


def _case(model: Any, feeds: list[dict[str, np.ndarray]], threads: int, opencv: bool) -> Callable[[int], object]:
    """One timed candidate: run ``model`` on feed ``i``. OpenCV's thread count is process-wide,
    so it is set before each of its runs."""

    def run(i: int) -> object:
        if opencv:
            cv2.setNumThreads(threads)
        return model.run(feeds[i])

    return run


def tune_model(
    manifest: Manifest,
    name: str,
    models_dir: Path,
    eval_dir: Path,
    progress: Progress,
    budget: float = BUDGET_S,
    pin: bool = True,
) -> ModelTune:
    """Measure one model on every candidate (cold and warm); check each engine against the reference."""
    from agent.models.probes import build_probe
    from agent.vision.runtime import ENGINES, load_model

    t_start = time.perf_counter()
    spec = manifest.get(name)
    cv_threads = cv2.getNumThreads()
    try:
        models = {e: load_model(spec, models_dir, e, threads=1) for e in ENGINES}
        probe = build_probe(spec, manifest, models_dir, eval_dir, models[REFERENCE])
        checks: dict[str, dict[str, Any]] = {}
        for engine in ENGINES:
            if engine != REFERENCE:
                checks[engine] = probe.check(models[engine], models[REFERENCE]).as_dict()
        cases = {
            key(e, t, sp): _case(
                load_model(spec, models_dir, e, t, sp, pin) if e == REFERENCE else models[e],
                probe.feeds,
                t,
                e != REFERENCE,
            )
            for e, t, sp in candidates()
        }
        t0 = time.perf_counter()
        for fn in cases.values():  # warm-up, and the cost of one round
            fn(0)
        one_round = 2 * (time.perf_counter() - t0) + len(cases) * IDLE_S
        rounds = int(min(MAX_ROUNDS, max(5, budget / max(one_round, 1e-6))))
        progress(f"{name}: {len(cases)} candidates x {rounds} rounds, cold and warm ({one_round * 1e3:.0f} ms a round)")
        warm: dict[str, list[float]] = {k: [] for k in cases}
        cold: dict[str, list[float]] = {k: [] for k in cases}
        order = np.random.default_rng(0)
        names = list(cases)
        n_feeds = len(probe.feeds)
        for r in range(rounds):
            for regime, idle_first in ((cold, True), (warm, False)):
                for i in order.permutation(len(names)):
                    if idle_first:
                        time.sleep(IDLE_S)
                    t1 = time.perf_counter()
                    cases[names[i]](r % n_feeds)
                    regime[names[i]].append((time.perf_counter() - t1) * 1e3)
    finally:
        cv2.setNumThreads(cv_threads)
    ms = {k: round(statistics.median(v), 3) for k, v in warm.items()}
    ms_cold = {k: round(statistics.median(v), 3) for k, v in cold.items()}
    return ModelTune(name, spec.sha256, ms, checks, rounds, round(time.perf_counter() - t_start, 2), ms_cold=ms_cold)


def tune(
    manifest: Manifest,
    names: Iterable[str],
    models_dir: Path,
    eval_dir: Path,
    cache: TuneCache,
    *,
    force: bool = False,
    progress: Progress = print,
) -> dict[str, ModelTune]:
    """The measurements of ``names``: from ``cache`` when current, else measured (and cached)."""
    out: dict[str, ModelTune] = {}
    names = list(dict.fromkeys(names))
    for i, name in enumerate(names, 1):
        spec = manifest.get(name)
        cached = None if force else cache.get(name, spec.sha256)
        if cached is not None:
            out[name] = cached
            continue
        progress(f"[{i}/{len(names)}] tuning {name} …")
        entry = tune_model(manifest, name, models_dir, eval_dir, progress, pin=cache.pin)
        progress(f"[{i}/{len(names)}] {name}: {describe(entry)} ({entry.seconds:.1f} s)")
        cache.models[name] = out[name] = entry
        cache.save()
    return out


def describe(entry: ModelTune) -> str:
    """Candidates cheapest first: ``key warm/cold ms``."""
    ranked = sorted(entry.ms, key=entry.cost)
    times = "  ".join(f"{k} {entry.ms[k]:.2f}/{entry.ms_cold.get(k, entry.ms[k]):.2f} ms" for k in ranked)
    bad = [e for e, c in entry.checks.items() if not c.get("ok")]
    return times + (f"  (outside tolerance: {', '.join(bad)})" if bad else "")


def choose(
    tunes: Mapping[str, ModelTune],
    threads: Iterable[int],
    forced: Mapping[str, str] | None = None,
    spin: SpinSetting = "auto",
) -> dict[str, Choice]:
    """The eligible candidate of least cost (warm + cold median) per model, ``threads``
    limiting the counts. ``spin`` other than ``auto`` (``models.spin``) forces onnxruntime's
    workers for every model: its candidates are ranked on the measurements of that mode
    (``always`` on those of ``never``, which it is between runs).

    OpenCV's thread count is one for the whole process, so every model chosen on OpenCV runs on
    the same count: the count that makes the sum of the chosen costs smallest.
    """
    allowed = sorted(set(threads))
    forced = forced or {}
    best_total = float("inf")
    best: dict[str, Choice] = {}

    # a forced mode is ranked on the candidates measured in it (``always`` on ``never``'s)
    measured: Spin = "run" if spin == "run" else "never"

    for cv_t in allowed:
        picks: dict[str, Choice] = {}
        total = 0.0
        for name, entry in tunes.items():
            want = forced.get(name)
            options = []
            for k in entry.ms:
                e, t, sp = parse_key(k)
                if (
                    t in allowed
                    and (entry.eligible(e) or e == want)  # a forced engine is used even outside tolerance
                    and (want is None or e == want)
                    and (e == REFERENCE or t == cv_t)
                    and (spin == "auto" or sp == spin_of(e, t, measured))
                ):
                    options.append((entry.cost(k), e, t, sp))
            if not options:
                continue
            cost, engine, t, sp = min(options)
            run_spin = spin_of(engine, t, sp if spin == "auto" else forced_spin(spin))
            picks[name] = Choice(engine, t, "forced" if want else "tuned", entry.ms, run_spin, entry.ms_cold)
            total += cost
        if total < best_total:
            best_total, best = total, picks
    return best


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/maix-agent/engines.json`` (``~/.cache/…``): one per machine and user."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "maix-agent" / "engines.json"


def plan(
    manifest: Manifest,
    names: Iterable[str],
    setting: str | Mapping[str, str],
    threads: Iterable[int],
    default_threads: Callable[[str], int],
    *,
    models_dir: Path,
    eval_dir: Path,
    cache_path: Path,
    spin: SpinSetting = "auto",
    pin: bool = True,
    progress: Progress = log.info,
) -> dict[str, Choice]:
    """Engine, threads and spinning for each of ``names`` under ``models.engine`` (``setting``)
    and ``models.spin`` (``spin``).

    ``auto`` models take the cached measurements, measured first when missing or stale (first
    start); a forced engine takes the measured thread count when there is one. Without
    measurements (tuning impossible: no evaluation images) a model runs on onnxruntime, or its
    forced engine, with ``default_threads(name)``, its workers sleeping unless ``spin`` says
    otherwise.
    """
    names = list(dict.fromkeys(names))
    per = {n: setting if isinstance(setting, str) else setting.get(n, "auto") for n in names}
    cache = TuneCache(cache_path, pin)
    tunes = {n: t for n in names if (t := cache.get(n, manifest.get(n).sha256)) is not None}
    missing = [n for n in names if per[n] == "auto" and n not in tunes]
    if missing:
        progress(
            f"tuning engines for {', '.join(missing)} ({cache.stale_reason or 'not measured'}; cache {cache_path})"
        )
        try:
            tunes.update(tune(manifest, missing, models_dir, eval_dir, cache, progress=progress))
        except (ModelError, OSError) as exc:
            log.warning("cannot tune the engines (%s): using onnxruntime for %s", exc, ", ".join(missing))
    forced = {n: e for n, e in per.items() if e != "auto"}
    chosen = choose(tunes, threads, forced, spin)
    for n in names:
        if n not in chosen:
            engine, count = forced.get(n, REFERENCE), default_threads(n)
            how = "forced" if n in forced else "default"
            chosen[n] = Choice(engine, count, how, spin=spin_of(engine, count, forced_spin(spin)))
    return chosen
