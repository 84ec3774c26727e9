"""system/ping, system/info."""

from __future__ import annotations

import time
from typing import Any

from agent.commands.base import command
from agent.commands.context import Context


@command("system", "ping")
def ping(_req: Any, ctx: Context) -> dict[str, Any]:
    """Liveness: answers at once."""
    return {"pong": True, "ts": time.time(), "dev": ctx.device_id}


@command("system", "info")
def info(_req: Any, ctx: Context) -> dict[str, Any]:
    """Version, device, models, fastpath, commands."""
    return ctx.info()


COMMANDS = [ping, info]
