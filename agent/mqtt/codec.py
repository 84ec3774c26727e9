"""Payload codecs: JSON and msgpack, with explicit limits on what a payload may allocate."""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Literal

import msgpack
import numpy as np

Encoding = Literal["json", "msgpack"]


class DecodeError(ValueError):
    """The payload is not a valid JSON / msgpack document within the limits."""


def sniff(payload: bytes, content_type: str | None = None) -> Encoding:
    """DESIGN §4: an MQTT 5 content-type decides; otherwise ``{`` first means JSON."""
    if content_type:
        ct = content_type.lower()
        if "json" in ct:
            return "json"
        if "msgpack" in ct or "messagepack" in ct:
            return "msgpack"
    return "json" if payload[:1] == b"{" else "msgpack"


def decode(payload: bytes, encoding: Encoding, *, max_bytes: int) -> Any:
    if len(payload) > max_bytes:
        raise DecodeError(f"payload of {len(payload)} bytes exceeds the limit of {max_bytes}")
    if encoding == "json":
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise DecodeError(f"invalid JSON: {exc}") from None
    try:
        # Every length is bounded by the payload itself; nothing a crafted header says can
        # allocate more than the payload's size.
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            max_bin_len=max_bytes,
            max_str_len=max_bytes,
            max_array_len=min(max_bytes, 1 << 20),
            max_map_len=min(max_bytes, 1 << 16),
            max_ext_len=0,
        )
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError, RecursionError) as exc:
        raise DecodeError(f"invalid msgpack: {exc}") from None


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    return _plain(obj)


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def encode(obj: Any, encoding: Encoding) -> bytes:
    if encoding == "json":
        return json.dumps(_finite(obj), default=_json_default, separators=(",", ":")).encode()
    packed: bytes = msgpack.packb(obj, default=_plain, use_bin_type=True)
    return packed
