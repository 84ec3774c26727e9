"""Load an ONNX model named in the manifest and check it against its contract.

A missing or corrupt file, or a session whose inputs and outputs differ from the manifest,
raises :class:`agent.errors.ModelError` naming the file. Nothing is guessed from tensor shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from agent.errors import ModelError
from agent.models.fetch import require
from agent.models.manifest import Dim, ModelSpec

log = logging.getLogger(__name__)


def _shape_ok(expected: Sequence[Dim], actual: Sequence[object]) -> bool:
    if len(expected) != len(actual):
        return False
    # A fixed dim in the manifest must be fixed and equal in the file; a named dim is free.
    return all(not isinstance(e, int) or a == e for e, a in zip(expected, actual, strict=True))


class OnnxModel:
    """One onnxruntime session for one manifest entry."""

    def __init__(self, spec: ModelSpec, models_dir: Path, threads: int = 2, spin: bool = False) -> None:
        self.spec = spec
        self.path = require(spec, models_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # onnxruntime's default keeps its worker threads spinning after a run; beside other
        # pipelines, a frame decoder and MQTT on two cores that steals more than it saves
        # (YOLOv8n-seg with 2 threads here: 14.3 ms spinning, 10.4 ms not; models.spin)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        self._check()
        self.output_names = [o.name for o in self.session.get_outputs()]
        meta = self.session.get_modelmeta()
        self.metadata: Mapping[str, str] = dict(meta.custom_metadata_map or {})

    def _check(self) -> None:
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        want_in = {self.spec.input.name: self.spec.input.shape, **self.spec.extra_inputs}
        problems: list[str] = []
        if set(inputs) != set(want_in):
            problems.append(f"inputs {sorted(inputs)} != manifest {sorted(want_in)}")
        else:
            for name, shape in want_in.items():
                if not _shape_ok(shape, inputs[name]):
                    problems.append(f"input {name} shape {inputs[name]} != manifest {list(shape)}")
        for name, shape in self.spec.outputs.items():
            if name not in outputs:
                problems.append(f"output {name} missing (file has {sorted(outputs)})")
            elif not _shape_ok(shape, outputs[name]):
                problems.append(f"output {name} shape {outputs[name]} != manifest {list(shape)}")
        if problems:
            raise ModelError(
                f"model file {self.path} does not match manifest entry {self.spec.name!r}: " + "; ".join(problems)
            )

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        out: list[np.ndarray] = self.session.run(list(outputs) if outputs else None, dict(feeds))
        return out

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Run with the single main input."""
        return self.run({self.spec.input.name: x})
