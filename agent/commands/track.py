"""track/start|stop."""

from __future__ import annotations

from typing import Any

from agent.commands.base import ImageBytes, RequestModel, command
from agent.commands.context import Context
from agent.commands.frames import check_box, image_for
from agent.commands.labels import Box
from agent.pipelines.track import TrackService


class Start(RequestModel):
    box: Box
    image: ImageBytes | None = None


@command("track", "start", Start, expensive=True)
def start(req: Start, ctx: Context) -> dict[str, Any]:
    """Start tracking the box of the image (or of the latest frame)."""
    image = image_for(req.image, ctx)
    box = check_box(req.box, image)
    assert box is not None
    return ctx.service(TrackService).start(image, box)


@command("track", "stop")
def stop(_req: Any, ctx: Context) -> dict[str, Any]:
    """Stop tracking."""
    return ctx.service(TrackService).stop()


COMMANDS = [start, stop]
