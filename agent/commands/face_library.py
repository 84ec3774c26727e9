"""face/reject|sample|unknowns|dismiss and bank/reembed: corrections, crops, the review queue.

(``face/enrol {label, unknown_id}``, ``face/forget {label, sample}`` and ``face/list {crops}``
are the face family's own commands in :mod:`agent.commands.face`.) Crops are JPEG bytes: msgpack
bin, base64 text in a JSON reply.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from agent.commands.base import ImageBytes, RequestModel, command
from agent.commands.context import Context
from agent.commands.frames import check_box, image_for
from agent.commands.labels import Box, Label
from agent.errors import CommandError
from agent.pipelines.face_library import FaceLibrary
from agent.pipelines.reembed import Reembed

EntryId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Reject(RequestModel):
    label: Label
    image: ImageBytes | None = None
    box: Box | None = None
    unknown_id: EntryId | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Reject:
        if self.unknown_id is not None and (self.image is not None or self.box is not None):
            raise ValueError("give unknown_id, or image and/or box, not both")
        return self


class SampleId(RequestModel):
    """``sample``: a sample's or negative's id (``face/list``) or a queued ``unknown_id``. (Not
    ``id``: that is every request's own id, echoed in the reply.)"""

    sample: EntryId


class Unknowns(RequestModel):
    crops: bool = False


class Dismiss(RequestModel):
    unknown_id: EntryId | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> Dismiss:
        if (self.unknown_id is None) == (not self.all):
            raise ValueError("give either unknown_id or all: true")
        return self


@command("face", "reject", Reject, expensive=True)
def reject(req: Reject, ctx: Context) -> dict[str, Any]:
    """ "This face is not LABEL": a negative example that later matches of LABEL must beat."""
    lib = ctx.service(FaceLibrary)
    if req.unknown_id is not None:
        return lib.reject(req.label, None, None, req.unknown_id)
    image = image_for(req.image, ctx)
    return lib.reject(req.label, image, check_box(req.box, image), None)


@command("face", "sample", SampleId)
def sample(req: SampleId, ctx: Context) -> dict[str, Any]:
    """The aligned face crop (JPEG) of a sample, a negative or a queued unknown face."""
    return ctx.service(FaceLibrary).sample(req.sample)


@command("face", "unknowns", Unknowns)
def unknowns(req: Unknowns, ctx: Context) -> dict[str, Any]:
    """The review queue: recent unknown faces that stayed, newest first."""
    return ctx.service(FaceLibrary).unknowns(req.crops)


@command("face", "dismiss", Dismiss)
def dismiss(req: Dismiss, ctx: Context) -> dict[str, Any]:
    """Drop one unknown face from the review queue, or all of them."""
    return ctx.service(FaceLibrary).dismiss(req.unknown_id)


@command("bank", "reembed")
def reembed(_req: Any, ctx: Context) -> dict[str, Any]:
    """Recompute the faces bank from the crops kept by other face models (progress in state)."""
    job = ctx.service(Reembed)
    if job is None:
        raise CommandError("unavailable", "no faces bank")
    return job.start()


COMMANDS = [reject, sample, unknowns, dismiss, reembed]
