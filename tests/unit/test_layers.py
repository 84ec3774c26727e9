"""The layering of agent/ (tools/check_layers.py): no import points up, no import cycle."""

from __future__ import annotations

import shutil
from pathlib import Path

from tools.check_layers import REPO, problems


def test_agent_imports_only_point_down_and_have_no_cycle() -> None:
    assert problems() == []


def test_the_check_catches_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    shutil.copytree(REPO / "agent", tmp_path / "agent", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    codec = tmp_path / "agent" / "mqtt" / "codec.py"
    codec.write_text(codec.read_text() + "\nfrom agent.commands import dispatch\n")
    found = problems(tmp_path)
    assert any("agent.mqtt.codec" in p and "higher layer 'commands'" in p for p in found), found
    assert any(p.startswith("import cycle:") and "agent.commands.dispatch" in p for p in found), found


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    shutil.copytree(REPO / "agent", tmp_path / "agent", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    codec = tmp_path / "agent" / "mqtt" / "codec.py"
    codec.write_text(codec.read_text() + "\nif TYPE_CHECKING:\n    from agent.app import Agent\n")
    assert problems(tmp_path) == []
