"""What the browser may ask for, validated here before anything reaches an agent.

Every WebSocket message is one of the models below (unknown fields, wrong types, oversize values
are refused with a clear error). A command must be one the console offers and its body must pass
the agent's own request model for that command (the public contract) — or, for commands of the
learning issue's face library that this build of the agent package may not know yet, the
contract's shape as written in DESIGN §10. The browser never sends image bytes: images come from
frames the console grabbed itself (``grab``); for a clicked face the other faces of that frame are
greyed out on the server, so ``face/enrol``'s "largest face" is the one clicked, at the scale the
detector saw it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from agent.commands.base import RequestModel
from agent.commands.labels import Box, Label
from agent.pipelines.registry import all_commands
from agent.settings import ID_RE

Dev = Annotated[str, StringConstraints(pattern=ID_RE.pattern)]

# What the console offers; preview/* stays the console's own business (leases follow the pages).
OFFERED = frozenset(
    {
        "system/ping",
        "system/info",
        "pipelines/get",
        "pipelines/set",
        "thresholds/get",
        "thresholds/set",
        "track/start",
        "track/stop",
        "classifier/add_class",
        "classifier/add_sample",
        "classifier/learn",
        "classifier/remove_class",
        "classifier/list",
        "face/enrol",
        "face/forget",
        "face/rename",
        "face/list",
        "face/reject",
        "face/sample",
        "face/unknowns",
        "face/dismiss",
        "infer",
    }
)
# "the frame it was drawn on": these take the frame the console grabbed (infer: the faces of the
# still frame the user clicks on)
NEEDS_GRAB = frozenset({"track/start", "classifier/add_class", "infer"})


EntryId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _FaceReject(RequestModel):
    label: Label
    box: Box | None = None
    image: bytes | None = None
    unknown_id: EntryId | None = None


class _FaceSample(RequestModel):
    sample: EntryId  # not `id`: that is every request's own id


class _FaceUnknowns(RequestModel):
    crops: bool = False


class _FaceDismiss(RequestModel):
    unknown_id: EntryId | None = None
    all: bool = False


# The learning issue's contract (DESIGN §10), used only where the agent package lacks the command
# or an older model of it.
CONTRACT: dict[str, type[RequestModel]] = {
    "face/reject": _FaceReject,
    "face/sample": _FaceSample,
    "face/unknowns": _FaceUnknowns,
    "face/dismiss": _FaceDismiss,
}


def _models() -> dict[str, type[RequestModel]]:
    models = dict(CONTRACT)
    for c in all_commands():
        models[f"{c.family}/{c.name}" if c.name else c.family] = c.request
    return models


MODELS = _models()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Watch(Strict):
    type: Literal["watch"]
    dev: Dev | None = None


class Grab(Strict):
    type: Literal["grab"]
    ref: int = Field(ge=0, le=2**31)
    dev: Dev


class Cmd(Strict):
    type: Literal["cmd"]
    ref: int = Field(ge=0, le=2**31)
    dev: Dev
    command: str = Field(max_length=64)
    body: dict[str, Any] = Field(default_factory=dict)
    grab: str | None = Field(None, max_length=64)  # a frame grabbed by the console: the command's image
    hide: list[Box] | None = Field(None, max_length=64)  # with grab: grey out these boxes (the faces not meant)


Incoming = TypeAdapter(Annotated[Watch | Grab | Cmd, Field(discriminator="type")])


class Refused(ValueError):
    """A browser request the console will not pass on; the message is shown in the page."""


def errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse(text: str) -> Watch | Grab | Cmd:
    try:
        msg: Watch | Grab | Cmd = Incoming.validate_json(text)
        return msg
    except ValidationError as exc:
        raise Refused(errors(exc)) from None


def check_command(cmd: Cmd, image: bytes | None) -> dict[str, Any]:
    """The body to send (with ``image`` when a grab goes along), validated by the command's model."""
    if cmd.command not in OFFERED:
        raise Refused(f"command {cmd.command!r} is not offered by the console")
    if "image" in cmd.body:
        raise Refused("image: the page cannot send images; the console sends the frame it grabbed")
    if cmd.command in NEEDS_GRAB and image is None:
        raise Refused(f"{cmd.command} needs the frame the box was drawn on (grab it first)")
    body = dict(cmd.body)
    if image is not None:
        body["image"] = image
    model = MODELS[cmd.command]
    try:
        checked = model.model_validate(body)
    except ValidationError as exc:
        raise Refused(f"{cmd.command}: {errors(exc)}") from None
    return checked.model_dump(exclude_unset=True)  # what the page set, as the model cleaned it
