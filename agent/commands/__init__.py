"""Command families. Each module exposes ``COMMANDS``; :func:`all_commands` collects them."""

from __future__ import annotations

from agent.commands import controls, system
from agent.commands.base import Command


def all_commands() -> list[Command]:
    return [*system.COMMANDS, *controls.COMMANDS]
