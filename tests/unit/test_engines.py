"""The engine seam (onnxruntime, OpenCV DNN) and the tuner that chooses between them."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.errors import ModelError
from agent.models import Manifest
from agent.models.probes import build_probe
from agent.models.tune import ModelTune, TuneCache, choose, plan, tune
from agent.vision.runtime import ENGINES, CvDnnModel, Model, OnnxModel, load_model


def test_both_engines_load_check_and_agree(models_dir: Path, manifest: Manifest) -> None:
    spec = manifest.get("nanotrack_v2_head")
    a, b = (load_model(spec, models_dir, e, threads=1) for e in ENGINES)
    assert isinstance(a, OnnxModel) and isinstance(b, CvDnnModel)
    assert a.inputs == b.inputs and a.outputs == b.outputs and a.output_names == b.output_names
    rng = np.random.default_rng(0)
    feeds = {"input1": rng.random((1, 48, 8, 8), np.float32), "input2": rng.random((1, 48, 16, 16), np.float32)}
    for x, y in zip(a.run(feeds), b.run(feeds), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)
    # named outputs, in the order asked for
    cls, loc = b.run(feeds, ["output2", "output1"])
    assert cls.shape == (1, 4, 16, 16) and loc.shape == (1, 2, 16, 16)


def test_opencv_engine_checks_the_contract(models_dir: Path, manifest: Manifest) -> None:
    spec = manifest.get("sface")
    other = replace(manifest.get("yunet"), file=spec.file, sha256=spec.sha256, size=spec.size)
    with pytest.raises(ModelError, match="yunet"):
        CvDnnModel(other, models_dir)
    with pytest.raises(ModelError, match="unknown engine 'tensorrt'"):
        load_model(spec, models_dir, "tensorrt")


def test_opencv_engine_runs_from_several_threads(models_dir: Path, manifest: Manifest) -> None:
    """A cv2.dnn.Net is not thread-safe: concurrent callers each get a net of the pool."""
    from concurrent.futures import ThreadPoolExecutor

    spec = manifest.get("nanotrack_v2_backbone")
    m = CvDnnModel(spec, models_dir, 1)
    rng = np.random.default_rng(1)
    xs = [rng.random((1, 3, 127, 127), np.float32) * 255 for _ in range(8)]
    want = [m(x)[0] for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: m(x)[0], xs * 4))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, want[i % 8])


def _tune(name: str, ms: dict[str, float], ok: bool = True, sha: str = "x") -> ModelTune:
    return ModelTune(name, sha, ms, {"opencv": {"ok": ok, "figure": 1.0 if ok else 0.5, "tolerance": "t"}})


def test_choose_takes_the_fastest_eligible_engine_and_threads() -> None:
    tunes = {
        "a": _tune("a", {"onnxruntime/1": 10, "onnxruntime/2": 8, "opencv/1": 5, "opencv/2": 6}),
        "b": _tune("b", {"onnxruntime/1": 10, "onnxruntime/2": 9, "opencv/1": 2, "opencv/2": 3}, ok=False),
        "c": _tune("c", {"onnxruntime/1": 3, "onnxruntime/2": 4, "opencv/1": 9, "opencv/2": 9}),
    }
    got = {n: (c.engine, c.threads, c.source) for n, c in choose(tunes, (1, 2)).items()}
    # b's OpenCV results are outside tolerance: never chosen, however fast
    assert got == {"a": ("opencv", 1, "tuned"), "b": ("onnxruntime", 2, "tuned"), "c": ("onnxruntime", 1, "tuned")}
    assert choose(tunes, (2,))["a"].threads == 2  # throughput mode / models.threads: the allowed counts only
    forced = choose(tunes, (1, 2), {"b": "opencv", "c": "opencv"})
    assert (forced["b"].engine, forced["b"].source) == ("opencv", "forced")  # the user's word wins
    assert forced["c"].engine == "opencv"


def test_choose_ranks_by_warm_plus_cold_and_follows_models_spin() -> None:
    """A candidate fast back to back but slow after idle cores loses to one good in both; a
    forced ``models.spin`` keeps to the candidates of its mode."""
    warm = {"onnxruntime/1": 10.0, "onnxruntime/2": 6.0, "onnxruntime/2+spin": 4.0, "opencv/1": 20.0, "opencv/2": 20.0}
    spiky = _tune("spiky", warm)
    spiky.ms_cold = {**warm, "onnxruntime/2": 7.0, "onnxruntime/2+spin": 11.0}  # 4 + 11 > 6 + 7
    steady = _tune("steady", warm)
    steady.ms_cold = {**warm, "onnxruntime/2": 9.0, "onnxruntime/2+spin": 5.0}
    got = choose({"spiky": spiky, "steady": steady}, (1, 2))
    assert (got["spiky"].threads, got["spiky"].spin) == (2, "never")
    assert (got["steady"].threads, got["steady"].spin) == (2, "run")
    assert got["steady"].ms_cold == steady.ms_cold and got["steady"].as_dict()["spin"] == "run"
    never = choose({"steady": steady}, (1, 2), spin="never")["steady"]
    assert (never.threads, never.spin) == (2, "never")
    always = choose({"steady": steady}, (1, 2), spin="always")["steady"]
    assert (always.threads, always.spin) == (2, "always")  # ranked on never's figures, run as always
    run = choose({"spiky": spiky}, (1, 2), spin="run")["spiky"]
    assert (run.threads, run.spin) == (2, "run")
    one = choose({"steady": steady}, (1,))["steady"]
    assert (one.threads, one.spin) == (1, "never")  # one thread: no worker to spin


def test_worker_threads_are_pinned_to_cpus_of_their_own(models_dir: Path, manifest: Manifest) -> None:
    import os

    from agent.vision.runtime import worker_cpus

    allowed = sorted(os.sched_getaffinity(0))
    assert worker_cpus(1) == [] and worker_cpus(len(allowed) + 1) == []
    if len(allowed) >= 2:
        assert worker_cpus(2) == [allowed[1]] and worker_cpus(len(allowed)) == allowed[1:]
    m = OnnxModel(manifest.get("nanotrack_v2_head"), models_dir, 2, "run")
    assert m.spin == "run" and m.threads == 2
    assert OnnxModel(manifest.get("nanotrack_v2_head"), models_dir, 1, "run").spin == "never"


def test_the_loader_runs_each_model_as_chosen(models_dir: Path, manifest: Manifest) -> None:
    from agent.models.tune import Choice
    from agent.pipelines.loader import ModelLoader

    chosen = {"nanotrack_v2_head": Choice("onnxruntime", 2, "tuned", spin="run")}
    loader = ModelLoader(manifest, models_dir, 2, "auto", choices=chosen)
    head = loader.get("nanotrack_v2_head")
    assert (head.engine, head.threads, head.spin) == ("onnxruntime", 2, "run")
    assert loader.choice("nanotrack_v2_backbone").spin == "never"  # not measured: sleeping workers
    assert ModelLoader(manifest, models_dir, 2, "always").choice("nanotrack_v2_backbone").spin == "always"
    assert loader.report()["nanotrack_v2_head"]["spin"] == "run"


def test_choose_gives_opencv_models_one_thread_count() -> None:
    """OpenCV's threads are process-wide: the count that makes the chosen total smallest."""
    tunes = {
        "a": _tune("a", {"onnxruntime/1": 50, "onnxruntime/2": 50, "opencv/1": 10, "opencv/2": 12}),
        "b": _tune("b", {"onnxruntime/1": 50, "onnxruntime/2": 50, "opencv/1": 30, "opencv/2": 20}),
    }
    got = choose(tunes, (1, 2))
    assert {c.threads for c in got.values()} == {2}  # 12 + 20 < 10 + 30


def test_cache_is_keyed_by_machine_engines_and_model(tmp_path: Path) -> None:
    path = tmp_path / "engines.json"
    cache = TuneCache(path)
    assert cache.stale_reason == "no cache"
    cache.models["a"] = _tune("a", {"onnxruntime/1": 1.0}, sha="s1")
    cache.save()
    again = TuneCache(path)
    assert again.get("a", "s1") is not None and again.get("a", "s2") is None  # another model file
    for part, value in (("engines", {"onnxruntime": "0.1", "opencv": "9"}), ("machine", {"cpu": "other"})):
        data = json.loads(path.read_text())
        data[part] = value
        path.write_text(json.dumps(data))
        stale = TuneCache(path)
        assert stale.get("a", "s1") is None and stale.stale_reason == f"{part} changed"
        cache.save()
    unpinned = TuneCache(path, pin=False)  # measured with pinned workers: not valid without
    assert unpinned.get("a", "s1") is None and unpinned.stale_reason == "pin changed"


class _Noisy(Model):
    """A wrong engine: the reference's outputs plus noise."""

    def __init__(self, inner: Model, noise: float) -> None:
        self.__dict__.update(inner.__dict__)
        self.engine, self._inner, self._noise = "noisy", inner, noise
        self._rng = np.random.default_rng(0)

    def run(self, feeds: Any, outputs: Any = None) -> list[np.ndarray]:
        out = self._inner.run(feeds, outputs)
        return [o + self._noise * np.abs(o).max() * self._rng.standard_normal(o.shape).astype(o.dtype) for o in out]


@pytest.mark.parametrize("name", ["mobilenet_v2", "yunet", "nanotrack_v2_head"])
def test_the_decoded_check_rejects_an_engine_that_differs(
    name: str, models_dir: Path, manifest: Manifest, eval_dir: Path
) -> None:
    ref = OnnxModel(manifest.get(name), models_dir, 1)
    probe = build_probe(manifest.get(name), manifest, models_dir, eval_dir, ref)
    assert probe.feeds and probe.check(ref, ref).ok
    bad = probe.check(_Noisy(ref, 0.3), ref)
    assert not bad.ok and bad.figure < 0.999, bad


def test_tune_measures_every_engine_and_thread_count_and_caches(
    tmp_path: Path, models_dir: Path, manifest: Manifest, eval_dir: Path
) -> None:
    cache = TuneCache(tmp_path / "engines.json")
    lines: list[str] = []
    got = tune(manifest, ["nanotrack_v2_head"], models_dir, eval_dir, cache, progress=lines.append)
    entry = got["nanotrack_v2_head"]
    assert (
        set(entry.ms)
        == set(entry.ms_cold)
        == {
            "onnxruntime/1",
            "onnxruntime/2",
            "onnxruntime/2+spin",
            "opencv/1",
            "opencv/2",
        }
    )
    assert all(v > 0 for v in [*entry.ms.values(), *entry.ms_cold.values()]) and entry.rounds >= 5
    assert entry.checks["opencv"]["ok"] and entry.checks["opencv"]["figure"] >= 0.95
    assert any("tuning nanotrack_v2_head" in line for line in lines)  # progress shown
    assert cv2.getNumThreads() >= 1
    assert TuneCache(cache.path).get("nanotrack_v2_head", entry.sha256) == entry


def test_plan_uses_the_cache_and_falls_back_without_eval_images(
    tmp_path: Path, models_dir: Path, manifest: Manifest, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "engines.json"
    cache = TuneCache(path)
    sha = manifest.get("nanotrack_v2_head").sha256
    cache.models["nanotrack_v2_head"] = _tune("nanotrack_v2_head", {"onnxruntime/1": 5, "opencv/2": 1}, sha=sha)
    cache.save()
    lines: list[str] = []
    kw: dict[str, Any] = {"models_dir": models_dir, "eval_dir": tmp_path / "no-eval", "cache_path": path}
    names = ["nanotrack_v2_head", "nanotrack_v2_backbone"]
    with caplog.at_level(logging.WARNING):
        got = plan(manifest, names, "auto", (1, 2), lambda n: 2, progress=lines.append, **kw)
    assert (got["nanotrack_v2_head"].engine, got["nanotrack_v2_head"].threads) == ("opencv", 2)  # cached: no run
    # the backbone is not cached and cannot be tuned here: onnxruntime, default threads, a warning
    assert got["nanotrack_v2_backbone"] == replace(got["nanotrack_v2_backbone"], engine="onnxruntime", source="default")
    assert "cannot tune the engines" in caplog.text and "no-eval" in caplog.text
    forced = plan(manifest, names, "onnxruntime", (1, 2), lambda n: 2, progress=lines.append, **kw)
    assert {c.engine for c in forced.values()} == {"onnxruntime"}
    assert forced["nanotrack_v2_head"].threads == 1  # forced, but the measured thread count
    assert forced["nanotrack_v2_backbone"].threads == 2 and forced["nanotrack_v2_backbone"].source == "forced"


def test_models_engine_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.errors import ConfigError
    from agent.settings import load_settings

    monkeypatch.delenv("MAIX_AGENT_MODELS__ENGINE", raising=False)
    assert load_settings(None).models.engine == "auto"
    assert load_settings(None, models={"engine": {"sface": "opencv"}}).models.engine == {"sface": "opencv"}
    monkeypatch.setenv("MAIX_AGENT_MODELS__ENGINE", "opencv")
    assert load_settings(None).models.engine == "opencv"
    with pytest.raises(ConfigError, match=r"models\.engine"):
        load_settings(None, models={"engine": "tensorrt"})
    s = load_settings(None, performance={"mode": "throughput"})
    assert s.engine_threads() == (1,)
    assert load_settings(None, models={"threads": 2}).engine_threads() == (2,)
    assert load_settings(None).engine_threads() == (1, 2)
