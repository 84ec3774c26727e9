"""Build a second face embedder for tests: SFace with a fixed random rotation after its output.

The ONNX file is edited at the protobuf level with a minimal schema made here (the ``onnx``
package is not a dependency; ``protobuf`` comes with onnxruntime): the node that produced the
graph output ``fc1`` now writes ``fc1_raw``, and an appended ``MatMul(fc1_raw, R)`` writes
``fc1`` with ``R`` a seeded random orthogonal 128x128 matrix stored as an initializer. Every
field this schema does not name is kept as unknown fields, byte for byte. Cosines between two
rotated embeddings equal the originals', so the new model recognises exactly as well, but its
vectors are unrelated to SFace's: old vectors stop matching.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _schema() -> Any:
    fd = descriptor_pb2.FileDescriptorProto(name="onnx_min.proto", package="onnx_min", syntax="proto2")

    def msg(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    msg(
        "Node",
        ("input", 1, _F.TYPE_STRING, rep, ""),
        ("output", 2, _F.TYPE_STRING, rep, ""),
        ("name", 3, _F.TYPE_STRING, opt, ""),
        ("op_type", 4, _F.TYPE_STRING, opt, ""),
    )
    msg(
        "Tensor",
        ("dims", 1, _F.TYPE_INT64, rep, ""),
        ("data_type", 2, _F.TYPE_INT32, opt, ""),
        ("name", 8, _F.TYPE_STRING, opt, ""),
        ("raw_data", 9, _F.TYPE_BYTES, opt, ""),
    )
    msg(
        "Graph",
        ("node", 1, _F.TYPE_MESSAGE, rep, ".onnx_min.Node"),
        ("initializer", 5, _F.TYPE_MESSAGE, rep, ".onnx_min.Tensor"),
    )
    msg("Model", ("graph", 7, _F.TYPE_MESSAGE, opt, ".onnx_min.Graph"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("onnx_min.Model"))


def rotation(dim: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def rotated_model(src: Path, dst: Path, *, output: str = "fc1", dim: int = 128, seed: int = 7) -> str:
    """Write the rotated copy of ``src`` to ``dst``; return its sha256."""
    model = _schema()()
    model.ParseFromString(src.read_bytes())
    graph = model.graph
    producers = [n for n in graph.node if output in n.output]
    assert len(producers) == 1 and not any(output in n.input for n in graph.node), "unexpected graph"
    outs = producers[0].output
    outs[list(outs).index(output)] = f"{output}_raw"
    graph.initializer.add(name="test_rotation", data_type=1, dims=[dim, dim], raw_data=rotation(dim, seed).tobytes())
    graph.node.add(input=[f"{output}_raw", "test_rotation"], output=[output], name="test_rotate", op_type="MatMul")
    data = model.SerializeToString()
    dst.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
