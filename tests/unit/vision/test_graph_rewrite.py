"""Graph rewrites for onnxruntime (agent.vision.graph_rewrite): same results, PRelu gone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from agent.models import Manifest
from agent.vision import graph_rewrite
from agent.vision.face_align import align_blob
from agent.vision.face_detect import FaceDetector
from agent.vision.runtime import OnnxModel, load_model

C, H, W = 6, 5, 7


def _model(
    slopes: list[np.ndarray], *, slope_as_input: bool = False, rank: int = 4, opset: int = 17
) -> onnx.ModelProto:
    """x → Conv → BatchNormalization → PRelu(slopes[0]) → Conv → PRelu(slopes[1]) … → y."""
    rng = np.random.default_rng(0)
    shape = [1, C, H, W][-rank:] if rank == 4 else [C, H, W]
    inits, nodes, inputs = [], [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    cur = "x"
    for k, s in enumerate(slopes):
        if rank == 4:
            inits.append(numpy_helper.from_array(rng.normal(size=(C, C, 3, 3)).astype(np.float32) * 0.3, f"w{k}"))
            nodes.append(helper.make_node("Conv", [cur, f"w{k}"], [f"c{k}"], pads=[1, 1, 1, 1]))
            cur = f"c{k}"
            if k == 0:
                for part, v in (("g", 1.5), ("b", 0.1), ("m", 0.2), ("v", 0.9)):
                    inits.append(numpy_helper.from_array(np.full(C, v, np.float32), f"bn_{part}"))
                nodes.append(helper.make_node("BatchNormalization", ["c0", "bn_g", "bn_b", "bn_m", "bn_v"], ["n0"]))
                cur = "n0"
        if slope_as_input:
            inputs.append(helper.make_tensor_value_info(f"s{k}", TensorProto.FLOAT, list(s.shape)))
        else:
            inits.append(numpy_helper.from_array(s.astype(np.float32), f"s{k}"))
        nodes.append(helper.make_node("PRelu", [cur, f"s{k}"], [f"p{k}"], name=f"prelu{k}"))
        cur = f"p{k}"
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto | bytes, feeds: dict[str, np.ndarray]) -> np.ndarray:
    body = model if isinstance(model, bytes) else model.SerializeToString()
    sess = ort.InferenceSession(body, providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(["y"], feeds)[0]
    return out


def _rewritten(model: onnx.ModelProto, tmp_path: Path) -> bytes | None:
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return graph_rewrite.for_onnxruntime(path)


slope_values = st.lists(
    st.one_of(st.sampled_from([0.0, 1.0, -1.0, 2.5]), st.floats(-3, 3, width=32)), min_size=C, max_size=C
)


@settings(max_examples=40, deadline=None)
@given(s0=slope_values, s1=slope_values, seed=st.integers(0, 2**31 - 1), channel_first=st.booleans())
def test_per_channel_prelu_becomes_batchnorm_relu_add_with_the_same_results(
    tmp_path_factory: pytest.TempPathFactory, s0: list[float], s1: list[float], seed: int, channel_first: bool
) -> None:
    shape = (C, 1, 1) if channel_first else (1, C, 1, 1)
    model = _model([np.array(s0).reshape(shape), np.array(s1).reshape(shape)])
    body = _rewritten(model, tmp_path_factory.mktemp("rw"))
    assert body is not None
    ops = Counter(n.op_type for n in onnx.load_from_string(body).graph.node)
    assert ops["PRelu"] == 0 and ops["BatchNormalization"] == 1 + 2 * 2 and ops["Relu"] == 2 and ops["Add"] == 2
    x = np.random.default_rng(seed).normal(size=(1, C, H, W)).astype(np.float32) * 4
    want, got = _run(model, {"x": x}), _run(body, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max() + 1))


def test_prelu_that_is_not_a_per_channel_scaling_is_left_alone(tmp_path: Path) -> None:
    per_w = np.linspace(-0.5, 0.5, W).astype(np.float32)  # (W,): broadcasts over the last axis, not channels
    assert _rewritten(_model([per_w]), tmp_path) is None
    per_c = np.linspace(-0.5, 0.5, C).reshape(C, 1, 1)
    assert _rewritten(_model([per_c], slope_as_input=True), tmp_path) is None  # not a constant
    assert _rewritten(_model([per_c], rank=3), tmp_path) is None  # (C, H, W): axis 1 is not the channels
    assert _rewritten(_model([per_c], opset=7), tmp_path) is None  # BatchNormalization too old


def test_a_file_onnx_cannot_read_is_left_to_onnxruntime(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    assert graph_rewrite.for_onnxruntime(bad) is None
    assert "graph rewrite skipped" in caplog.text


def test_sface_runs_rewritten_with_the_original_embeddings(
    models_dir: Path, manifest: Manifest, eval_dir: Path
) -> None:
    """The real SFace: every PRelu rewritten; real aligned faces give the original embeddings."""
    spec = manifest.get("sface")
    body = graph_rewrite.for_onnxruntime(models_dir / spec.file)
    assert body is not None
    ops = Counter(n.op_type for n in onnx.load_from_string(body).graph.node)
    assert ops["PRelu"] == 0 and ops["Add"] == 27
    rewritten = load_model(spec, models_dir, "onnxruntime", threads=1)
    assert isinstance(rewritten, OnnxModel)
    plain = ort.InferenceSession(str(models_dir / spec.file), providers=["CPUExecutionProvider"])
    detector = FaceDetector(load_model(manifest.get("yunet"), models_dir, "onnxruntime", threads=1), "yunet")
    photos = sorted((eval_dir / "faces" / "knn_examples" / "train").glob("*/*"))[:6]
    cosines = []
    for photo in photos:
        frame = cv2.imread(str(photo))
        assert frame is not None, photo
        for face in detector.detect(frame)[:2]:
            blob = align_blob(frame, face.points, 112, rgb=True, mean=0.0, scale=1.0)
            a = rewritten.run({"data": blob})[0].ravel()
            b = plain.run(None, {"data": blob})[0].ravel()
            cosines.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    assert len(cosines) >= 6
    assert min(cosines) > 0.99999, cosines
