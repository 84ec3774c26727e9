from __future__ import annotations

from pathlib import Path

import pytest

from agent.controls import Controls
from agent.errors import CommandError
from agent.pipelines.faces import FaceThresholds, decision_of
from agent.settings import load_settings
from agent.storage import atomic_write, read_json, write_json


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    p = tmp_path / "a" / "f.json"
    write_json(p, {"a": 1})
    write_json(p, {"a": 2})
    assert read_json(p) == {"a": 2}
    assert [x.name for x in p.parent.iterdir()] == ["f.json"]  # no temp files left


def test_corrupt_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "f.json"
    atomic_write(p, b"{half")
    assert read_json(p) is None
    assert not p.exists() and len(list(tmp_path.glob("f.json.corrupt-*"))) == 1
    assert "moved aside" in caplog.text


def test_controls_partial_updates_persist(tmp_path: Path) -> None:
    s = load_settings(storage={"dir": tmp_path})
    c = Controls(s, tmp_path)
    c.set_thresholds({"face": {"match": 0.9}})
    c.set_pipelines({"segment": True})
    with pytest.raises(CommandError) as exc:
        c.set_thresholds({"face": {"match": "high"}})
    assert exc.value.code == "bad_request" and "face.match" in exc.value.message
    assert c.threshold(FaceThresholds).match == 0.9  # a rejected change leaves the old value
    c2 = Controls(s, tmp_path)
    assert (
        c2.threshold(FaceThresholds).match == 0.9
        and c2.threshold(FaceThresholds).detect == 0.6
        and c2.enabled("segment")
    )


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    s = load_settings(storage={"dir": tmp_path})
    c = Controls(s, tmp_path)
    c.path = tmp_path / "missing-dir" / "x" / "controls.json"
    (tmp_path / "missing-dir").write_text("a file, not a dir")
    with pytest.raises(CommandError) as exc:
        c.set_thresholds({"face": {"match": 0.5}})
    assert exc.value.code == "unavailable"
    assert c.threshold(FaceThresholds).match != 0.5


def test_face_decision_thresholds_are_settable_and_reach_the_rule(tmp_path: Path) -> None:
    s = load_settings(storage={"dir": tmp_path})
    c = Controls(s, tmp_path)
    rule, limits = decision_of(c.threshold(FaceThresholds))
    assert (rule.match, rule.margin, rule.margin_grey) == (0.70, 0.07, 0.08)
    assert (limits.min_eyes, limits.min_sharpness) == (16.0, 12.0)
    c.set_thresholds({"face": {"margin": 0.0, "margin_grey": 0.1, "min_eyes": 24}})
    with pytest.raises(CommandError) as exc:
        c.set_thresholds({"face": {"margin": -0.1}})
    assert "face.margin" in exc.value.message
    rule, limits = decision_of(Controls(s, tmp_path).threshold(FaceThresholds))
    assert (rule.margin, rule.margin_grey, limits.min_eyes) == (0.0, 0.1, 24.0)
