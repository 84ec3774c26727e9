"""face/enrol|forget|rename|list."""

from __future__ import annotations

from typing import Any, Literal

from agent.commands.base import ImageBytes, RequestModel, command
from agent.commands.context import Context
from agent.commands.frames import image_for
from agent.commands.labels import Label
from agent.errors import CommandError
from agent.pipelines.faces import FaceService


class Enrol(RequestModel):
    label: Label | None = None
    image: ImageBytes | None = None
    pick: Literal["largest", "unknown"] = "largest"


class ByLabel(RequestModel):
    label: Label


class Rename(RequestModel):
    label: Label
    to: Label


@command("face", "enrol", Enrol, expensive=True)
def enrol(req: Enrol, ctx: Context) -> dict[str, Any]:
    """Enrol the largest face (or every unknown face, MaixPy-style id_N without a label)."""
    if req.label is None and req.pick == "largest":
        raise CommandError("bad_request", "label: required with pick=largest")
    image = image_for(req.image, ctx)
    return ctx.service(FaceService).enrol(image, req.label, req.pick)


@command("face", "forget", ByLabel)
def forget(req: ByLabel, ctx: Context) -> dict[str, Any]:
    """Forget every sample of a person, on every camera of the fleet."""
    return ctx.service(FaceService).forget(req.label)


@command("face", "rename", Rename)
def rename(req: Rename, ctx: Context) -> dict[str, Any]:
    """Give an enrolled person a new label."""
    return ctx.service(FaceService).rename(req.label, req.to)


@command("face", "list")
def list_faces(_req: Any, ctx: Context) -> dict[str, Any]:
    """Enrolled people with their sample counts, in class-id order."""
    return ctx.service(FaceService).list()


COMMANDS = [enrol, forget, rename, list_faces]
