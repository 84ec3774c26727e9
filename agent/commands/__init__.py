"""Command families. Each module exposes ``COMMANDS``; :func:`all_commands` collects them."""

from __future__ import annotations

from agent.commands import bank, classifier, controls, face, face_library, infer, preview, snapshot, system, track
from agent.commands.base import Command


def all_commands() -> list[Command]:
    return [
        *system.COMMANDS,
        *controls.COMMANDS,
        *classifier.COMMANDS,
        *face.COMMANDS,
        *face_library.COMMANDS,
        *track.COMMANDS,
        *infer.COMMANDS,
        *snapshot.COMMANDS,
        *preview.COMMANDS,
        *bank.COMMANDS,
    ]
