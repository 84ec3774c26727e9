"""What a command is: a family, a name, a pydantic request model and a plain handler function.

Handlers take ``(request, context)`` and return reply data; they never see topics or paho.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


class RequestModel(BaseModel):
    """Base of every request: unknown fields are an error, nothing is coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class Empty(RequestModel):
    pass


def _binary(what: str) -> BeforeValidator:
    """Bytes in either encoding: msgpack bin as is, base64 text in JSON."""

    def check(value: Any) -> bytes:
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                pass
        elif isinstance(value, (bytes, bytearray)):
            return bytes(value)
        raise ValueError(f"{what} must be base64 text (JSON) or bytes (msgpack)")

    return BeforeValidator(check)


ImageBytes = Annotated[bytes, _binary("image")]  # JPEG/PNG
DataBytes = Annotated[bytes, _binary("data")]  # a bank file


@dataclass(frozen=True)
class Command:
    family: str
    name: str
    request: type[RequestModel]
    handler: Callable[[Any, Any], Any]
    expensive: bool = False  # runs a model: subject to rate limits
    doc: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.family, self.name)


def command(
    family: str, name: str, request: type[RequestModel] = Empty, *, expensive: bool = False
) -> Callable[[Callable[[Any, Any], Any]], Command]:
    """Decorator: turn a plain function into a :class:`Command`."""

    def wrap(fn: Callable[[Any, Any], Any]) -> Command:
        return Command(family, name, request, fn, expensive, (fn.__doc__ or "").strip())

    return wrap
