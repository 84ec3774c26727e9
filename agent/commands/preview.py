"""preview/start|stop: the live-view lease (JPEG frames on maix/{dev}/preview only while held)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agent.commands.base import RequestModel, command
from agent.commands.context import Context
from agent.preview import Preview


class Start(RequestModel):
    seconds: float = Field(10.0, gt=0, le=3600)


@command("preview", "start", Start)
def start(req: Start, ctx: Context) -> dict[str, Any]:
    """Take or extend the live-view lease for `seconds` (capped by preview.max_lease); renew it to keep watching."""
    return ctx.service(Preview).start(req.seconds)


@command("preview", "stop")
def stop(_req: Any, ctx: Context) -> dict[str, Any]:
    """End the live-view lease now."""
    return ctx.service(Preview).stop()


COMMANDS = [start, stop]
