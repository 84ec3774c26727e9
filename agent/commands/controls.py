"""pipelines/get|set and thresholds/get|set (persisted in the state dir)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from agent.commands.base import RequestModel, command
from agent.commands.context import Context


class Patch(RequestModel):
    """A partial map: by pipeline name (pipelines/set) or by thresholds section (thresholds/set).
    The pipeline registry gives each command a model with one optional field per pipeline
    (:func:`agent.pipelines.registry.all_commands`); the live controls then validate the values
    against the settings models, with the same errors as the config file."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def patch(self) -> dict[str, Any]:
        """The names given (a null value leaves the name as it is)."""
        given = {**self.model_dump(exclude_none=True), **(self.model_extra or {})}
        return {k: v for k, v in given.items() if v is not None}


class PipelinesSet(Patch):
    pass


class ThresholdsSet(Patch):
    pass


class Names(Patch):
    """The base of the registry's models: only the names it declares."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@command("pipelines", "get")
def pipelines_get(_req: Any, ctx: Context) -> dict[str, Any]:
    """Which pipelines run on every frame."""
    return ctx.controls.pipelines.model_dump()


@command("pipelines", "set", PipelinesSet)
def pipelines_set(req: PipelinesSet, ctx: Context) -> dict[str, Any]:
    """Enable or disable pipelines; names left out keep their value."""
    return ctx.controls.set_pipelines(req.patch()).model_dump()


@command("thresholds", "get")
def thresholds_get(_req: Any, ctx: Context) -> dict[str, Any]:
    """Every threshold, nested by pipeline."""
    return ctx.controls.thresholds.model_dump()


@command("thresholds", "set", ThresholdsSet)
def thresholds_set(req: ThresholdsSet, ctx: Context) -> dict[str, Any]:
    """Change the thresholds a partial map names; the rest stay."""
    return ctx.controls.set_thresholds(req.patch()).model_dump()


COMMANDS = [pipelines_get, pipelines_set, thresholds_get, thresholds_set]
