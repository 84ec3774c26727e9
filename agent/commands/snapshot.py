"""snapshot {draw?}: publish the latest frame as JPEG on maix/{dev}/snapshot."""

from __future__ import annotations

from typing import Any

from agent.commands.base import RequestModel, command
from agent.commands.context import Context
from agent.errors import CommandError


class Snapshot(RequestModel):
    draw: bool = False


@command("snapshot", "", Snapshot)
def snapshot(req: Snapshot, ctx: Context) -> dict[str, Any]:
    """Publish a JPEG of the latest frame (with the latest results drawn when draw is true)."""
    latest = ctx.frames.latest
    if latest is None or latest.image is None:
        raise CommandError("unavailable", "no frame from the source yet")
    size = ctx.snapshot(latest, req.draw)
    h, w = latest.image.shape[:2]
    return {"seq": latest.seq, "bytes": size, "w": w, "h": h, "draw": req.draw}


COMMANDS = [snapshot]
