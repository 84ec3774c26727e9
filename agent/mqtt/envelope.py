"""The envelopes: a command request ``{id?, …args}``, its reply ``{id, ok, data | error}``, and
a result ``{v, dev, seq, ts, w, h, …body}`` (``result/{kind}`` and the ``infer`` reply)."""

from __future__ import annotations

from typing import Any

from agent.errors import ErrorCode

MAX_ID_LEN = 128
RESULT_SCHEMA = 1


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


def result(dev: str | None, seq: int, ts: float, w: int, h: int, body: dict[str, Any]) -> dict[str, Any]:
    """A pipeline's result for one frame or image of ``w`` x ``h`` (no ``dev`` when None: offline)."""
    head: dict[str, Any] = {"v": RESULT_SCHEMA}
    if dev is not None:
        head["dev"] = dev
    return {**head, "seq": seq, "ts": ts, "w": w, "h": h, **body}
