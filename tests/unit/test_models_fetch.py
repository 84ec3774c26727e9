"""Model fetch from a folder mirror and from an http mirror on a loopback http.server."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ModelError
from agent.models import Manifest, load_manifest
from agent.models.fetch import fetch, require, verify
from agent.vision.runtime import OnnxModel

SMALL = "yunet"  # 0.24 MB: the smallest model in the manifest


def test_manifest_lists_all_ten_models(manifest: Manifest) -> None:
    assert len(manifest.models) == 10
    roles = {m.role for m in manifest.models.values()}
    assert {"features", "face_detector", "face_embedder", "segmenter", "tracker_backbone", "tracker_head"} <= roles
    assert manifest.get("sface").fingerprint == "107111c7155b"


def test_folder_mirror_fetch_and_verify(tmp_path: Path, models_dir: Path, manifest: Manifest) -> None:
    out = tmp_path / "m"
    [v] = fetch(manifest, str(models_dir), out, [SMALL], progress=lambda s: None)
    assert v.ok and verify(manifest.get(SMALL), out).ok
    (out / manifest.get(SMALL).file).write_bytes(b"garbage")
    assert verify(manifest.get(SMALL), out).status == "corrupt"
    with pytest.raises(ModelError, match="does not match sha256"):
        require(manifest.get(SMALL), out)
    fetch(manifest, str(models_dir), out, [SMALL], progress=lambda s: None)  # repairs it
    assert verify(manifest.get(SMALL), out).ok


def test_missing_model_error_names_file_and_fix(tmp_path: Path, manifest: Manifest) -> None:
    with pytest.raises(ModelError) as exc:
        OnnxModel(manifest.get("sface"), tmp_path)
    assert "sface_2021dec.onnx" in str(exc.value) and "models fetch" in str(exc.value)


def test_bad_mirror_file_is_refused(tmp_path: Path, manifest: Manifest) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / manifest.get(SMALL).file).write_bytes(b"not the model")
    with pytest.raises(ModelError, match="refusing"):
        fetch(manifest, str(mirror), tmp_path / "out", [SMALL], progress=lambda s: None)
    assert not (tmp_path / "out" / manifest.get(SMALL).file).exists()
    assert not list((tmp_path / "out").glob(".fetch-*"))


@pytest.fixture
def http_mirror(models_dir: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(models_dir))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_http_mirror(tmp_path: Path, http_mirror: str, manifest: Manifest) -> None:
    out = tmp_path / "m"
    [v] = fetch(manifest, http_mirror, out, [SMALL], progress=lambda s: None)
    assert v.ok
    with pytest.raises(ModelError, match="cannot read"):
        fetch(load_manifest(), http_mirror + "nope/", tmp_path / "x", [SMALL], progress=lambda s: None)


def test_model_contract_is_checked(models_dir: Path, manifest: Manifest, tmp_path: Path) -> None:
    from dataclasses import replace

    spec = manifest.get("sface")
    OnnxModel(spec, models_dir)  # the real file matches its entry
    wrong = replace(spec, input=replace(spec.input, name="images"))
    with pytest.raises(ModelError, match="does not match manifest"):
        OnnxModel(wrong, models_dir)
    # a file that is another model (same hash check bypassed by pointing the spec at it)
    other = replace(manifest.get("yunet"), file=spec.file, sha256=spec.sha256, size=spec.size)
    with pytest.raises(ModelError, match="yunet"):
        OnnxModel(other, models_dir)


def _ort(model: object) -> Any:
    assert isinstance(model, OnnxModel), model
    return model.session


@pytest.mark.parametrize(
    ("spin", "want", "allow", "stop"),
    [
        (None, "auto", "0", "1"),  # the default: per model as tuned; a model not measured sleeps
        (False, "never", "0", "1"),
        ("run", "run", "1", "1"),  # spin while a model runs, stop when it returns
        ("always", "always", "1", "0"),
        (True, "always", "1", "0"),
    ],
)
def test_session_threads_and_spinning_follow_the_settings(
    models_dir: Path, manifest: Manifest, spin: object, want: str, allow: str, stop: str
) -> None:
    """models.threads and models.spin reach onnxruntime's session options."""
    from agent.pipelines.loader import ModelLoader
    from agent.settings import Settings

    s = Settings.model_validate({} if spin is None else {"models": {"spin": spin}})
    assert s.models.spin == want
    loader = ModelLoader(manifest, models_dir, threads=2, spin=s.models.spin)
    opts = _ort(loader.get("nanotrack_v2_head")).get_session_options()
    assert opts.intra_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == allow
    assert opts.get_session_config_entry("session.force_spinning_stop") == stop
    # the worker (threads - 1 of them) pinned to the second CPU this process may use (1-based)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        assert opts.get_session_config_entry("session.intra_op_thread_affinities") == str(cpus[1] + 1)
    unpinned = ModelLoader(manifest, models_dir, threads=2, spin=s.models.spin, pin=False)
    with pytest.raises(Exception, match="intra_op_thread_affinities"):
        _ort(unpinned.get("nanotrack_v2_head")).get_session_options().get_session_config_entry(
            "session.intra_op_thread_affinities"
        )


def test_tracker_networks_get_one_thread(models_dir: Path, manifest: Manifest) -> None:
    """NanoTrack's networks run on one thread (unless models.threads says otherwise); the rest on
    the default."""
    from agent.pipelines.loader import ModelLoader
    from agent.settings import Settings

    s = Settings.model_validate({})
    loader = ModelLoader(manifest, models_dir, s.model_threads(), one_thread=s.one_thread_roles())
    assert _ort(loader.get("nanotrack_v2_backbone")).get_session_options().intra_op_num_threads == 1
    assert _ort(loader.get("nanotrack_v2_head")).get_session_options().intra_op_num_threads == 1
    assert _ort(loader.get("yunet")).get_session_options().intra_op_num_threads == 2
    explicit = Settings.model_validate({"models": {"threads": 3}})
    assert explicit.one_thread_roles() == frozenset()
