"""classifier/add_class|add_sample|learn|remove_class|list|clear (MaixPy's self-learning classifier)."""

from __future__ import annotations

from typing import Any

from agent.commands.base import ImageBytes, RequestModel, command
from agent.commands.context import Context
from agent.commands.frames import check_box, image_for
from agent.commands.labels import Box, Label
from agent.pipelines.classifier import ClassifierService


class AddClass(RequestModel):
    label: Label
    image: ImageBytes | None = None
    box: Box | None = None


class AddSample(RequestModel):
    image: ImageBytes | None = None
    box: Box | None = None


class ByLabel(RequestModel):
    label: Label


@command("classifier", "add_class", AddClass, expensive=True)
def add_class(req: AddClass, ctx: Context) -> dict[str, Any]:
    """Learn a class from the image (or box of it); an existing label gets one more view."""
    image = image_for(req.image, ctx)
    return ctx.service(ClassifierService).add_class(req.label, image, check_box(req.box, image))


@command("classifier", "add_sample", AddSample, expensive=True)
def add_sample(req: AddSample, ctx: Context) -> dict[str, Any]:
    """Store an unlabelled sample for learn()."""
    image = image_for(req.image, ctx)
    return ctx.service(ClassifierService).add_sample(image, check_box(req.box, image))


@command("classifier", "learn")
def learn(_req: Any, ctx: Context) -> dict[str, Any]:
    """Refine the classes with the samples; epochs = 0 means nothing new was learned."""
    return ctx.service(ClassifierService).learn()


@command("classifier", "remove_class", ByLabel)
def remove_class(req: ByLabel, ctx: Context) -> dict[str, Any]:
    """Forget a class on every camera of the fleet."""
    return ctx.service(ClassifierService).remove_class(req.label)


@command("classifier", "list")
def list_classes(_req: Any, ctx: Context) -> dict[str, Any]:
    """Classes in class-id order with their view counts, and the sample count."""
    return ctx.service(ClassifierService).list()


@command("classifier", "clear")
def clear(_req: Any, ctx: Context) -> dict[str, Any]:
    """Forget every class and sample."""
    return ctx.service(ClassifierService).clear()


COMMANDS = [add_class, add_sample, learn, remove_class, list_classes, clear]
