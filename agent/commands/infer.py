"""infer {pipeline, image}: one pipeline on one image, whatever runs live."""

from __future__ import annotations

import time
from typing import Any

from agent.commands.base import ImageBytes, RequestModel, command
from agent.commands.context import Context
from agent.commands.frames import image_for
from agent.mqtt import envelope


class Infer(RequestModel):
    pipeline: str
    image: ImageBytes | None = None


@command("infer", "", Infer, expensive=True)
def infer(req: Infer, ctx: Context) -> dict[str, Any]:
    """The pipeline's result map for this image, same schema as the result topics."""
    image = image_for(req.image, ctx)
    body = ctx.engine.infer(req.pipeline, image)
    h, w = image.shape[:2]
    return envelope.result(ctx.device_id, 0, time.time(), w, h, body)


COMMANDS = [infer]
