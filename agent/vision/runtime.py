"""The engine seam: load an ONNX model named in the manifest on one inference engine, check it
against its contract, run it.

Every model runs through :class:`Model` (``run(feeds, outputs)``, ``model(x)``, ``spec``,
``inputs``/``outputs`` from the file, ``metadata``). Two engines today, named in
:data:`ENGINES`: onnxruntime (:class:`OnnxModel`, the reference) and OpenCV's DNN module
(:class:`CvDnnModel`). :func:`load_model` picks one by name; which one a model gets is chosen
by measurement (``agent.models.tune``).

A missing or corrupt file, or a model whose inputs and outputs differ from the manifest, raises
:class:`agent.errors.ModelError` naming the file. Nothing is guessed from tensor shapes.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import onnxruntime as ort

from agent.errors import ModelError
from agent.models.fetch import require
from agent.models.manifest import Dim, ModelSpec
from agent.vision import graph_rewrite

log = logging.getLogger(__name__)

ENGINES = ("onnxruntime", "opencv")
Spin = Literal["never", "run", "always"]  # when onnxruntime's worker threads busy-wait (see _ort_session)
Shape = tuple[object, ...]


def engine_versions() -> dict[str, str]:
    """The version of every engine: a tuned choice is only valid for the versions it was measured on."""
    return {"onnxruntime": ort.__version__, "opencv": cv2.__version__}


def _shape_ok(expected: Sequence[Dim], actual: Sequence[object]) -> bool:
    if len(expected) != len(actual):
        return False
    # A fixed dim in the manifest must be fixed and equal in the file; a named dim is free.
    return all(not isinstance(e, int) or a == e for e, a in zip(expected, actual, strict=True))


def check_contract(spec: ModelSpec, path: Path, inputs: Mapping[str, Shape], outputs: Mapping[str, Shape]) -> None:
    """Raise :class:`ModelError` unless the file's inputs and outputs are the manifest's."""
    want_in = {spec.input.name: spec.input.shape, **spec.extra_inputs}
    problems: list[str] = []
    if set(inputs) != set(want_in):
        problems.append(f"inputs {sorted(inputs)} != manifest {sorted(want_in)}")
    else:
        for name, shape in want_in.items():
            if not _shape_ok(shape, inputs[name]):
                problems.append(f"input {name} shape {list(inputs[name])} != manifest {list(shape)}")
    for name, shape in spec.outputs.items():
        if name not in outputs:
            problems.append(f"output {name} missing (file has {sorted(outputs)})")
        elif not _shape_ok(shape, outputs[name]):
            problems.append(f"output {name} shape {list(outputs[name])} != manifest {list(shape)}")
    if problems:
        raise ModelError(f"model file {path} does not match manifest entry {spec.name!r}: " + "; ".join(problems))


def worker_cpus(threads: int) -> list[int]:
    """The CPUs (0-based) the ``threads - 1`` worker threads of a session are pinned to: the
    second, third … CPU this process may run on (the calling thread, onnxruntime's first, is
    not pinned). Empty with one thread or fewer CPUs than threads."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return allowed[1:threads] if 1 < threads <= len(allowed) else []


def _ort_session(path: Path, threads: int, spin: Spin, optimise: bool = True, pin: bool = True) -> ort.InferenceSession:
    """A session on ``path``; ``optimise`` also applies :mod:`agent.vision.graph_rewrite` (same
    results, faster graph) and onnxruntime's own graph optimisations."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # infers the shapes
    # ``never``: workers sleep whenever they have no work. ``run``: they spin while a run is
    # active and stop the moment it returns. ``always`` spins on between runs too, which steals
    # the cores from the next model, the frame decoder and MQTT (SFace on OpenCV right after:
    # 14.0 ms against 9.7 ms). Which of never / run is faster is measured per model (tune).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0" if spin == "never" else "1")
    opts.add_session_config_entry("session.force_spinning_stop", "0" if spin == "always" else "1")
    # ``pin``: each worker on a CPU of its own. Unpinned, after the cores idled (a 30 fps camera
    # leaves them idle half the time) the kernel wakes the worker on the calling thread's CPU and
    # the two share it: YuNet 640x480, 2 threads, after 20 ms idle, 7.3 ms unpinned against 5.5 ms
    # pinned (workers spinning while it runs: 10.7 against 4.1 ms; back to back all alike).
    if pin and (cpus := worker_cpus(threads)):
        opts.add_session_config_entry("session.intra_op_thread_affinities", ";".join(str(c + 1) for c in cpus))
    model: str | bytes = str(path)
    if optimise:
        model = graph_rewrite.for_onnxruntime(path) or model
    try:
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc


class Model:
    """One model file on one engine. Subclasses set the attributes and implement :meth:`run`."""

    engine = ""
    spin: Spin = "never"
    spec: ModelSpec
    path: Path
    threads: int
    inputs: dict[str, Shape]  # the file's inputs and outputs, as checked against the manifest
    outputs: dict[str, Shape]
    output_names: list[str]
    metadata: Mapping[str, str]

    def _describe(self, session: ort.InferenceSession) -> None:
        self.inputs = {i.name: tuple(i.shape) for i in session.get_inputs()}
        self.outputs = {o.name: tuple(o.shape) for o in session.get_outputs()}
        check_contract(self.spec, self.path, self.inputs, self.outputs)
        self.output_names = list(self.outputs)
        self.metadata = dict(session.get_modelmeta().custom_metadata_map or {})

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Run with the single main input; every output, in the file's order."""
        return self.run({self.spec.input.name: x})

    def __repr__(self) -> str:
        return f"<{self.spec.name} on {self.engine}, {self.threads} thread(s)>"


class OnnxModel(Model):
    """One onnxruntime session for one manifest entry (the reference engine). A session may be
    run from several threads at once."""

    engine = "onnxruntime"

    def __init__(
        self, spec: ModelSpec, models_dir: Path, threads: int = 2, spin: Spin = "never", pin: bool = True
    ) -> None:
        self.spec = spec
        self.path = require(spec, models_dir)
        self.threads = max(1, threads)
        self.spin: Spin = spin if self.threads > 1 else "never"  # one thread: no worker to spin
        self.session = _ort_session(self.path, self.threads, self.spin, pin=pin)
        self._describe(self.session)

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        out: list[np.ndarray] = self.session.run(list(outputs) if outputs else None, dict(feeds))
        return out


class CvDnnModel(Model):
    """The same file on OpenCV's DNN engine (``cv2.dnn``).

    OpenCV's thread count is process-wide (``cv2.setNumThreads``): loading sets it, so every
    OpenCV model of a process runs on the count the last one was loaded with (the loader loads
    them all with one count). A ``cv2.dnn.Net`` is not safe to run from two threads at once, so
    each concurrent caller gets a net of its own from a small pool (a second one is read only
    when two frames run the model at the same time, as throughput mode's lanes do).
    """

    engine = "opencv"

    def __init__(
        self, spec: ModelSpec, models_dir: Path, threads: int = 2, spin: Spin = "never", pin: bool = True
    ) -> None:
        del spin, pin  # onnxruntime's options; OpenCV's pool has no such switches
        self.spec = spec
        self.path = require(spec, models_dir)
        self.threads = max(1, threads)
        # the contract (names, shapes, metadata) read from the file by an unoptimised session
        self._describe(_ort_session(self.path, 1, "never", optimise=False))
        cv2.setNumThreads(self.threads)
        self._pool: queue.SimpleQueue[cv2.dnn.Net] = queue.SimpleQueue()
        net = self._new_net()
        have = set(net.getUnconnectedOutLayersNames())
        if not set(self.output_names) <= have:
            raise ModelError(f"OpenCV reads {self.path} with outputs {sorted(have)}, not {self.output_names}")
        self._pool.put(net)

    def _new_net(self) -> cv2.dnn.Net:
        try:
            return cv2.dnn.readNetFromONNX(str(self.path))
        except cv2.error as exc:
            raise ModelError(f"OpenCV DNN cannot load {self.path}: {exc}") from exc

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        names = list(outputs) if outputs else self.output_names
        try:
            net = self._pool.get_nowait()
        except queue.Empty:
            net = self._new_net()
        try:
            for name, value in feeds.items():
                net.setInput(np.ascontiguousarray(value, dtype=np.float32), name)
            return list(net.forward(names))
        finally:
            self._pool.put(net)


_CLASSES: dict[str, type[OnnxModel] | type[CvDnnModel]] = {"onnxruntime": OnnxModel, "opencv": CvDnnModel}


def load_model(
    spec: ModelSpec,
    models_dir: Path,
    engine: str = "onnxruntime",
    threads: int = 2,
    spin: Spin = "never",
    pin: bool = True,
) -> Model:
    """``spec``'s file on ``engine`` (one of :data:`ENGINES`) with ``threads`` threads
    (onnxruntime: workers spinning per ``spin``, pinned to CPUs of their own with ``pin``)."""
    try:
        cls = _CLASSES[engine]
    except KeyError:
        raise ModelError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})") from None
    return cls(spec, models_dir, threads, spin, pin)
