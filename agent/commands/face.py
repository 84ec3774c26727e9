"""face/enrol|forget|rename|list (the library's other commands: :mod:`agent.commands.face_library`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from agent.commands.base import ImageBytes, RequestModel, command
from agent.commands.context import Context
from agent.commands.face_library import EntryId
from agent.commands.frames import image_for
from agent.commands.labels import Label
from agent.errors import CommandError
from agent.pipelines.face_library import FaceLibrary
from agent.pipelines.faces import FaceService


class Enrol(RequestModel):
    label: Label | None = None
    image: ImageBytes | None = None
    pick: Literal["largest", "unknown"] = "largest"
    unknown_id: EntryId | None = None

    @model_validator(mode="after")
    def _from_queue(self) -> Enrol:
        if self.unknown_id is not None and (self.label is None or self.image is not None or self.pick != "largest"):
            raise ValueError("unknown_id takes a label and neither image nor pick")
        return self


class Forget(RequestModel):
    label: Label
    sample: EntryId | None = None


class ListFaces(RequestModel):
    crops: bool = False


class Rename(RequestModel):
    label: Label
    to: Label


@command("face", "enrol", Enrol, expensive=True)
def enrol(req: Enrol, ctx: Context) -> dict[str, Any]:
    """Enrol the largest face (or every unknown face, MaixPy-style id_N without a label), or
    a face from the review queue (``unknown_id``)."""
    if req.unknown_id is not None and req.label is not None:
        return ctx.service(FaceLibrary).enrol_unknown(req.label, req.unknown_id)
    if req.label is None and req.pick == "largest":
        raise CommandError("bad_request", "label: required with pick=largest")
    image = image_for(req.image, ctx)
    return ctx.service(FaceService).enrol(image, req.label, req.pick)


@command("face", "forget", Forget)
def forget(req: Forget, ctx: Context) -> dict[str, Any]:
    """Forget every sample (and negative) of a person, or one of them, on every camera of the fleet."""
    return ctx.service(FaceService).forget(req.label, req.sample)


@command("face", "rename", Rename)
def rename(req: Rename, ctx: Context) -> dict[str, Any]:
    """Give an enrolled person a new label."""
    return ctx.service(FaceService).rename(req.label, req.to)


@command("face", "list", ListFaces)
def list_faces(req: ListFaces, ctx: Context) -> dict[str, Any]:
    """Enrolled people in class-id order with their samples and negatives (ids, crops on request)."""
    return ctx.service(FaceService).list(req.crops)


COMMANDS = [enrol, forget, rename, list_faces]
