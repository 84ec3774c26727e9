"""pipelines/get|set and thresholds/get|set (persisted in the state dir)."""

from __future__ import annotations

from typing import Any

from agent.commands.base import RequestModel, command
from agent.commands.context import Context


class PipelinesSet(RequestModel):
    classifier: bool | None = None
    faces: bool | None = None
    segment: bool | None = None
    track: bool | None = None


class ThresholdsSet(RequestModel):
    face: dict[str, Any] | None = None
    segment: dict[str, Any] | None = None
    track: dict[str, Any] | None = None
    classifier: dict[str, Any] | None = None


@command("pipelines", "get")
def pipelines_get(_req: Any, ctx: Context) -> dict[str, Any]:
    """Which pipelines run on every frame."""
    return ctx.controls.pipelines.model_dump()


@command("pipelines", "set", PipelinesSet)
def pipelines_set(req: PipelinesSet, ctx: Context) -> dict[str, Any]:
    """Enable or disable pipelines; names left out keep their value."""
    patch = req.model_dump(exclude_none=True)
    return ctx.controls.set_pipelines(patch).model_dump()


@command("thresholds", "get")
def thresholds_get(_req: Any, ctx: Context) -> dict[str, Any]:
    """Every threshold, nested by pipeline."""
    return ctx.controls.thresholds.model_dump()


@command("thresholds", "set", ThresholdsSet)
def thresholds_set(req: ThresholdsSet, ctx: Context) -> dict[str, Any]:
    """Change the thresholds a partial map names; the rest stay."""
    patch = req.model_dump(exclude_none=True)
    return ctx.controls.set_thresholds(patch).model_dump()


COMMANDS = [pipelines_get, pipelines_set, thresholds_get, thresholds_set]
