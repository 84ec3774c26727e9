"""The command envelope: request ``{id?, …args}`` and reply ``{id, ok, data | error}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import ErrorCode
from agent.mqtt.codec import Encoding

MAX_ID_LEN = 128


@dataclass(frozen=True)
class Request:
    family: str
    command: str
    id: Any
    args: dict[str, Any]
    encoding: Encoding
    response_topic: str | None = None
    correlation_data: bytes | None = None


def split_id(body: Any) -> tuple[Any, dict[str, Any] | None]:
    """Take the optional ``id`` out of a decoded body; ``None`` args if the body is no map."""
    if not isinstance(body, dict):
        return None, None
    args = dict(body)
    req_id = args.pop("id", None)
    if not (req_id is None or isinstance(req_id, (int, str))) or (isinstance(req_id, str) and len(req_id) > MAX_ID_LEN):
        req_id = None  # an id we cannot echo safely is dropped, not echoed
    return req_id, args


def ok(req_id: Any, data: Any) -> dict[str, Any]:
    return {"id": req_id, "ok": True, "data": {} if data is None else data}


def error(req_id: Any, code: ErrorCode, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}
