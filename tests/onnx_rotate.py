"""Build a second face embedder for tests: SFace with a fixed random rotation after its output.

The node that produced the graph output ``fc1`` now writes ``fc1_raw``, and an appended
``MatMul(fc1_raw, R)`` writes ``fc1`` with ``R`` a seeded random orthogonal 128x128 matrix stored
as an initializer (edited with the ``onnx`` package). Cosines between two rotated embeddings
equal the originals', so the new model recognises exactly as well, but its vectors are unrelated
to SFace's: old vectors stop matching.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def rotation(dim: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def rotated_model(src: Path, dst: Path, *, output: str = "fc1", dim: int = 128, seed: int = 7) -> str:
    """Write the rotated copy of ``src`` to ``dst``; return its sha256."""
    model = onnx.load(str(src))
    graph = model.graph
    producers = [n for n in graph.node if output in n.output]
    assert len(producers) == 1 and not any(output in n.input for n in graph.node), "unexpected graph"
    outs = producers[0].output
    outs[list(outs).index(output)] = f"{output}_raw"
    graph.initializer.append(numpy_helper.from_array(rotation(dim, seed), "test_rotation"))
    graph.node.append(helper.make_node("MatMul", [f"{output}_raw", "test_rotation"], [output], name="test_rotate"))
    data = model.SerializeToString()
    dst.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
