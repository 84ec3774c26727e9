"""The pipelines, each named once.

An entry says everything the rest of the agent needs to know about a pipeline: its name (the
``pipelines.{name}`` switch, ``infer``'s argument), its result kind (``maix/{dev}/result/{kind}``),
its thresholds section and model, which models and bank it uses, its service factory (and its
companion services), its commands and its Home Assistant controls. The engine, the worker's
lanes, the settings, the live controls, Home Assistant discovery, the app and the CLI iterate
over :data:`PIPELINES`; a new pipeline is its own module(s) plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic import create_model

from agent.commands import classifier as classifier_commands
from agent.commands import controls as controls_commands
from agent.commands import face as face_commands
from agent.commands import face_library as face_library_commands
from agent.commands import general_commands
from agent.commands import track as track_commands
from agent.commands.base import Command
from agent.pipelines import face_library
from agent.pipelines.classifier import ClassifierService, ClassifierThresholds
from agent.pipelines.faces import FaceService, FaceThresholds
from agent.pipelines.live import Build, LiveService
from agent.pipelines.segment import SegmentService, SegmentThresholds
from agent.pipelines.track import TrackService, TrackThresholds
from agent.sections import Section

if TYPE_CHECKING:
    from agent.settings import ModelsSettings


@dataclass(frozen=True)
class HaNumber:
    """A threshold as a Home Assistant slider: entity key ``{section}_{field}``."""

    field: str
    name: str
    top: float = 1.0


@dataclass(frozen=True)
class HaButton:
    """A Home Assistant button that sends ``family/command`` with an empty request."""

    key: str
    command: str  # family/command
    name: str
    icon: str


@dataclass(frozen=True)
class BankSpec:
    name: str  # the bank's name (fleet topics, bank/export)
    model: Callable[[ModelsSettings], str]  # the embedding model its vectors come from


@dataclass(frozen=True)
class Pipeline:
    name: str
    kind: str
    thresholds: type[Section]  # its ``section`` ClassVar names thresholds.{section}
    enabled: bool  # default of pipelines.{name}
    about: str  # what pipelines.{name} turns on (settings description, docs)
    models: Callable[[ModelsSettings], list[str]]
    service: Callable[[Build], LiveService]
    commands: Sequence[Command] = ()
    companions: Callable[[Build, Any], Sequence[object]] = lambda _build, _service: ()  # more services
    bank: BankSpec | None = None
    aliases: tuple[str, ...] = ()  # other names infer accepts
    numbers: tuple[HaNumber, ...] = ()
    buttons: tuple[HaButton, ...] = ()
    sequential: bool = False  # every frame depends on the one before: one lane thread (track)

    @property
    def section(self) -> str:
        section: str = getattr(self.thresholds, "section")  # noqa: B009 (a ClassVar of the model)
        return section


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline(
        "classifier",
        "classify",
        ClassifierThresholds,
        False,
        "classify every frame",
        lambda m: [m.features],
        ClassifierService.build,
        classifier_commands.COMMANDS,
        bank=BankSpec("classes", lambda m: m.features),
        aliases=("classify",),
        buttons=(HaButton("learn", "classifier/learn", "Learn classes", "mdi:school"),),
    ),
    Pipeline(
        "faces",
        "faces",
        FaceThresholds,
        True,
        "detect and recognise faces on every frame",
        lambda m: [m.face_detector, m.face_embedder],
        FaceService.build,
        (*face_commands.COMMANDS, *face_library_commands.COMMANDS),
        companions=face_library.companions,
        bank=BankSpec("faces", lambda m: m.face_embedder),
        aliases=("face",),
        numbers=(HaNumber("match", "Face match threshold"), HaNumber("detect", "Face detect threshold")),
    ),
    Pipeline(
        "segment",
        "segments",
        SegmentThresholds,
        False,
        "instance segmentation on every frame",
        lambda m: [m.segmenter],
        SegmentService.build,
        aliases=("segments",),
        numbers=(HaNumber("score", "Segment score threshold"),),
    ),
    Pipeline(
        "track",
        "track",
        TrackThresholds,
        True,
        "track the target once track/start has been sent",
        lambda m: [f"{m.tracker}_backbone", f"{m.tracker}_head"],
        TrackService.build,
        track_commands.COMMANDS,
        numbers=(HaNumber("score", "Track score threshold"),),
        sequential=True,
    ),
)

KINDS: tuple[str, ...] = tuple(p.kind for p in PIPELINES)


def by_name(name: str) -> Pipeline | None:
    """The pipeline ``infer`` and the CLI mean by ``name`` (its name, result kind or an alias)."""
    for p in PIPELINES:
        if name in (p.name, p.kind, *p.aliases):
            return p
    return None


def names() -> str:
    return ", ".join(p.name for p in PIPELINES)


def _with_names(cmd: Command) -> Command:
    """``pipelines/set`` and ``thresholds/set`` with a request model naming each pipeline (its
    switch, its thresholds section), so an unknown name is refused like any unknown field."""
    fields: dict[str, Any]
    if cmd.key == ("pipelines", "set"):
        fields = {p.name: (bool | None, None) for p in PIPELINES}
    elif cmd.key == ("thresholds", "set"):
        fields = {p.section: (dict[str, Any] | None, None) for p in PIPELINES}
    else:
        return cmd
    model = create_model(f"{cmd.request.__name__}ByName", __base__=controls_commands.Names, **fields)
    return replace(cmd, request=model)


def all_commands() -> list[Command]:
    """Every command of the agent: the general families and each pipeline's own."""
    return [_with_names(c) for c in [*general_commands(), *(c for p in PIPELINES for c in p.commands)]]
