"""Command families. Each module exposes ``COMMANDS``; the pipelines' own families are listed by
the pipeline registry (``agent.pipelines.registry.all_commands`` collects everything)."""

from __future__ import annotations

from agent.commands import bank, controls, infer, preview, snapshot, system
from agent.commands.base import Command


def general_commands() -> list[Command]:
    """The commands that belong to no single pipeline."""
    return [
        *system.COMMANDS,
        *controls.COMMANDS,
        *infer.COMMANDS,
        *snapshot.COMMANDS,
        *preview.COMMANDS,
        *bank.COMMANDS,
    ]
