"""One fleet bank entry: the retained message of DESIGN §5.

Wire form (msgpack map, version 1)::

    {v: 1, id, bank, label, vec, dim, hlc: [wall_ms, counter, origin], origin, deleted, sig}

=========  ============================================================================
field      type and rule
=========  ============================================================================
v          int, exactly 1
id         str matching ``[A-Za-z0-9_-]{1,64}``; unique in the fleet (made by the sync layer)
bank       str ``[A-Za-z0-9_-]{1,64}`` (e.g. ``faces``, ``classes``); must be the expected bank
label      str, 1..128 characters, no NUL
vec        bin: ``dim`` little-endian float32, all finite; a tombstone's is empty (``nil`` is
           accepted on receipt and read as empty)
dim        int, 1..65535, must equal the local model's feature length (tombstones too)
hlc        array ``[wall_ms: int >= 0, counter: int >= 0, origin: str]`` (see
           :mod:`agent.bank.clock`); the last-writer-wins stamp of this version
origin     str ``[A-Za-z0-9_.:-]{1,64}``: the agent that created the entry (the hlc origin is
           the agent that wrote this version, e.g. the one that deleted it)
deleted    bool; ``true`` marks a tombstone, which carries no vector
sig        bin of 32 bytes (HMAC-SHA256) when the fleet has a key; ``nil`` or absent otherwise
crop       *optional* bin: the sample's aligned face crop, a JPEG (``FF D8 FF`` …), at most
           ``MAX_CROP_BYTES``; absent when there is none (old entries, MaixPy imports, class
           vectors, tombstones: a tombstone never carries one)
neg        *optional* bool, present only as ``true``: a *negative* example ("this is not
           ``label``", ``face/reject``), which never names anyone; tombstones keep it
=========  ============================================================================

No other key is allowed. The two optional keys are left out of the map (and of the canonical
bytes) when they hold nothing, so an entry without them encodes, and is signed, exactly as
before they existed: old entries load, sync and verify unchanged. (An agent that predates them
refuses entries that carry them, as ``bad_field``: a negative must never be read as a sample.)

**Canonical encoding** (what the signature covers, and exactly what :meth:`BankEntry.encode`
emits minus ``sig``): a msgpack map holding the nine fields other than ``sig``, with keys in
ascending order of their UTF-8 bytes (``bank, [crop,] deleted, dim, hlc, id, label, [neg,] origin,
v, vec``),
packed with the msgpack spec's "new" types (``use_bin_type=True`` in msgpack-python): strings as
str, ``vec`` as bin (empty bin for a tombstone, never nil), ``hlc`` as a 3-element array,
``deleted`` as true/false, and every integer in its shortest msgpack encoding (positive fixint,
uint8/16/32/64). ``sig = HMAC-SHA256(key, canonical_bytes)``. The receiver verifies by rebuilding
the canonical bytes from the decoded field values, so the sender's own packing choices do not
matter. A signed payload is the same map with ``sig`` added (again in sorted key order, between
``origin`` and ``v``), so encoding is deterministic: the same entry always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

import msgpack
import numpy as np

from agent.bank.clock import Stamp
from agent.errors import AgentError

__all__ = [
    "MAX_DIM",
    "MAX_LABEL_CHARS",
    "VERSION",
    "BankEntry",
    "RejectReason",
    "RejectedEntry",
    "canonical_bytes",
]

VERSION = 1
MAX_DIM = 65535
MAX_LABEL_CHARS = 128
MAX_CROP_BYTES = 48 << 10  # a 112x112 JPEG is 3-6 KiB; the entry as a whole must fit limits.bank_entry_bytes
JPEG_MAGIC = b"\xff\xd8\xff"
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ORIGIN_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_F32 = np.dtype("<f4")
_FIELDS = frozenset({"v", "id", "bank", "label", "vec", "dim", "hlc", "origin", "deleted"})
_OPTIONAL = frozenset({"crop", "neg"})
_MAX_STR_BYTES = 4 * MAX_LABEL_CHARS  # longest legal str: 128 chars of at most 4 UTF-8 bytes

RejectReason = Literal[
    "oversize",
    "not_msgpack",
    "not_map",
    "bad_field",
    "bad_version",
    "bank_mismatch",
    "dim_mismatch",
    "bad_vector",
    "tombstone_with_vector",
    "bad_crop",
    "unsigned",
    "bad_signature",
]


class RejectedEntry(AgentError):
    """An inbound entry was refused; ``reason`` is a short stable code fit for a counter."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: RejectReason = reason
        self.detail = detail


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int  # bool is an int subclass; it is not a valid integer here


def _check_fields(
    id: object,
    bank: object,
    label: object,
    vec: object,
    dim: object,
    hlc: object,
    origin: object,
    deleted: object,
) -> str | None:
    """Why these field values are invalid on their own (without expectations), or ``None``."""
    if not isinstance(id, str) or not _ID_RE.fullmatch(id):
        return f"id must match [A-Za-z0-9_-]{{1,64}}, got {id!r}"
    if not isinstance(bank, str) or not _ID_RE.fullmatch(bank):
        return f"bank must match [A-Za-z0-9_-]{{1,64}}, got {bank!r}"
    if not isinstance(label, str) or not 1 <= len(label) <= MAX_LABEL_CHARS:
        return f"label must be a str of 1..{MAX_LABEL_CHARS} characters"
    if "\0" in label:
        return "label contains NUL"
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        return "label is not encodable as UTF-8"
    if not isinstance(origin, str) or not _ORIGIN_RE.fullmatch(origin):
        return f"origin must match [A-Za-z0-9_.:-]{{1,64}}, got {origin!r}"
    if not _is_int(dim) or not 1 <= dim <= MAX_DIM:
        return f"dim must be an int in 1..{MAX_DIM}"
    if not isinstance(deleted, bool):
        return "deleted must be a bool"
    if not isinstance(vec, bytes):
        return "vec must be bytes"
    if not (
        isinstance(hlc, Stamp)
        and _is_int(hlc.wall_ms)
        and _is_int(hlc.counter)
        and 0 <= hlc.wall_ms < 2**63
        and 0 <= hlc.counter < 2**63
        and isinstance(hlc.origin, str)
        and _ORIGIN_RE.fullmatch(hlc.origin)
    ):
        return "hlc must be [wall_ms >= 0, counter >= 0, origin matching [A-Za-z0-9_.:-]{1,64}]"
    return None


def _check_vector(vec: bytes, dim: int, deleted: bool) -> tuple[RejectReason, str] | None:
    """Why the vector does not fit ``dim``/``deleted``, or ``None``; fields already checked."""
    if deleted:
        if vec:
            return "tombstone_with_vector", f"tombstone carries {len(vec)} vector bytes"
        return None
    if len(vec) != _F32.itemsize * dim:
        return "bad_vector", f"vec is {len(vec)} bytes, dim {dim} needs {_F32.itemsize * dim}"
    if not np.isfinite(np.frombuffer(vec, dtype=_F32)).all():
        return "bad_vector", "vec contains NaN or infinite values"
    return None


def _check_extras(crop: object, neg: object, deleted: bool) -> tuple[RejectReason, str] | None:
    """Why the optional ``crop`` / ``neg`` values are invalid, or ``None``."""
    if not isinstance(neg, bool):
        return "bad_field", "neg must be a bool"
    if not isinstance(crop, bytes):
        return "bad_field", "crop must be bytes"
    if not crop:
        return None
    if deleted:
        return "bad_crop", "a tombstone carries no crop"
    if len(crop) > MAX_CROP_BYTES or not crop.startswith(JPEG_MAGIC):
        return "bad_crop", f"crop must be a JPEG of at most {MAX_CROP_BYTES} bytes"
    return None


@dataclass(frozen=True)
class BankEntry:
    """One version of one bank entry. Construction validates every field (``ValueError``).

    ``vec`` is the raw little-endian float32 bytes (empty for a tombstone); use :meth:`vector`
    for an array, :meth:`from_vector` to build an entry from one and :meth:`tombstone` to make
    the deletion of an entry.
    """

    id: str
    bank: str
    label: str
    vec: bytes
    dim: int
    hlc: Stamp
    origin: str
    deleted: bool = False
    crop: bytes = b""  # the aligned face crop (JPEG) the vector was computed from; b"" = none
    neg: bool = False  # a negative example of ``label`` (face/reject)

    def __post_init__(self) -> None:
        problem = _check_fields(
            self.id,
            self.bank,
            self.label,
            self.vec,
            self.dim,
            self.hlc,
            self.origin,
            self.deleted,
        )
        if problem is None:
            vec_problem = _check_vector(self.vec, self.dim, self.deleted) or _check_extras(
                self.crop, self.neg, self.deleted
            )
            problem = vec_problem[1] if vec_problem else None
        if problem is not None:
            raise ValueError(problem)

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def from_vector(
        cls,
        *,
        id: str,
        bank: str,
        label: str,
        vector: np.ndarray,
        hlc: Stamp,
        origin: str,
        crop: bytes = b"",
        neg: bool = False,
    ) -> BankEntry:
        """A live entry holding ``vector`` (1-D, converted to little-endian float32)."""
        vec = np.asarray(vector)
        if vec.ndim != 1:
            raise ValueError(f"vector must be 1-D, got shape {vec.shape}")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf -> refused
            raw = vec.astype(_F32).tobytes()
        return cls(id, bank, label, raw, int(vec.shape[0]), hlc, origin, False, crop, neg)

    def tombstone(self, hlc: Stamp) -> BankEntry:
        """The deletion of this entry, stamped ``hlc`` (same id, bank, label, dim, origin, neg;
        no vector, no crop)."""
        return BankEntry(self.id, self.bank, self.label, b"", self.dim, hlc, self.origin, True, b"", self.neg)

    def vector(self) -> np.ndarray:
        """The vector as a read-only native float32 copy (shape ``(0,)`` for a tombstone)."""
        out = np.frombuffer(self.vec, dtype=_F32).astype(np.float32)
        out.setflags(write=False)
        return out

    # ------------------------------------------------------------------ wire form

    def _fields(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "id": self.id,
            "bank": self.bank,
            "label": self.label,
            "vec": self.vec,
            "dim": self.dim,
            "hlc": [self.hlc.wall_ms, self.hlc.counter, self.hlc.origin],
            "origin": self.origin,
            "deleted": self.deleted,
            **({"crop": self.crop} if self.crop else {}),
            **({"neg": True} if self.neg else {}),
        }

    def canonical(self) -> bytes:
        """The canonical msgpack of every field but ``sig`` (see the module docstring)."""
        return canonical_bytes(self._fields())

    def encode(self, key: bytes | None) -> bytes:
        """The wire payload: canonical msgpack, with ``sig`` (HMAC-SHA256) if ``key`` is set.

        Without a key ``sig`` is written as nil.
        """
        fields = self._fields()
        fields["sig"] = None if key is None else _sign(key, canonical_bytes(fields))
        return canonical_bytes(fields)

    @classmethod
    def decode(
        cls,
        payload: bytes,
        *,
        key: bytes | None,
        expect_dim: int,
        expect_bank: str,
        max_bytes: int,
    ) -> BankEntry:
        """Parse and check an inbound payload; raises :class:`RejectedEntry` and nothing else.

        Checks, in order: size (``oversize``), msgpack (``not_msgpack``), a map (``not_map``),
        exact key set and field types/values (``bad_field``), ``v`` (``bad_version``), bank
        (``bank_mismatch``), dim (``dim_mismatch``), the vector (``bad_vector``,
        ``tombstone_with_vector``) and, with a ``key``, the signature (``unsigned``,
        ``bad_signature``). Without a key any ``sig`` is ignored. ``v`` other than 1 is
        reported as ``bad_version`` before the key set is checked, since another version may
        have other fields. (An empty ``key`` is a caller bug and raises ``ValueError``.)
        """
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise RejectedEntry("not_msgpack", f"payload is {type(payload).__name__}")
        if len(payload) > max_bytes:
            raise RejectedEntry("oversize", f"{len(payload)} bytes > {max_bytes}")
        try:
            obj = msgpack.unpackb(
                payload,
                raw=False,
                strict_map_key=True,
                use_list=True,
                max_str_len=_MAX_STR_BYTES,
                max_bin_len=min(max_bytes, _F32.itemsize * MAX_DIM),
                max_array_len=3,
                max_map_len=16,
                max_ext_len=0,
            )
        except Exception as exc:  # msgpack raises many types for bad input; all mean the same
            raise RejectedEntry("not_msgpack", type(exc).__name__) from None
        if not isinstance(obj, dict):
            raise RejectedEntry("not_map", f"top level is {type(obj).__name__}")
        version = obj.get("v")
        if _is_int(version) and version != VERSION:
            raise RejectedEntry("bad_version", f"v={version}")  # before the key set: v2 may differ
        keys = set(obj)
        sig = obj.pop("sig", None)
        missing = _FIELDS - keys
        extra = keys - _FIELDS - _OPTIONAL - {"sig"}
        if missing or extra:
            raise RejectedEntry("bad_field", f"missing {sorted(missing)}, unknown {sorted(map(str, extra))}")
        if not _is_int(version):
            raise RejectedEntry("bad_field", "v must be an int")
        hlc = obj["hlc"]
        if not (isinstance(hlc, list) and len(hlc) == 3):
            raise RejectedEntry("bad_field", "hlc must be a 3-element array")
        vec = obj["vec"]
        if vec is None:
            vec = b""
        if sig is not None and not isinstance(sig, bytes):
            raise RejectedEntry("bad_field", "sig must be bin or nil")
        stamp = Stamp(*hlc)
        values = (obj["id"], obj["bank"], obj["label"], vec, obj["dim"], stamp, obj["origin"])
        deleted = obj["deleted"]
        problem = _check_fields(*values, deleted)
        if problem is not None:
            raise RejectedEntry("bad_field", problem)
        if obj["bank"] != expect_bank:
            raise RejectedEntry("bank_mismatch", f"entry is for bank {obj['bank']!r}")
        if obj["dim"] != expect_dim:
            raise RejectedEntry("dim_mismatch", f"entry has dim {obj['dim']}, the model has {expect_dim}")
        crop, neg = obj.get("crop", b""), obj.get("neg", False)
        if ("crop" in obj and crop == b"") or ("neg" in obj and neg is False):
            raise RejectedEntry("bad_field", "crop and neg are left out when empty / false, never sent so")
        vec_problem = _check_vector(vec, obj["dim"], deleted) or _check_extras(crop, neg, deleted)
        if vec_problem is not None:
            raise RejectedEntry(*vec_problem)
        entry = cls(*values, deleted, crop, neg)
        if key is not None:
            if sig is None:
                raise RejectedEntry("unsigned", "the fleet has a key but the entry has no sig")
            if not hmac.compare_digest(sig, _sign(key, entry.canonical())):
                raise RejectedEntry("bad_signature", f"entry {entry.id!r}")
        return entry


def _sign(key: bytes, canonical: bytes) -> bytes:
    if not key:
        raise ValueError("the fleet key must not be empty")
    return hmac.new(key, canonical, hashlib.sha256).digest()


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """msgpack of ``fields`` with keys sorted by their UTF-8 bytes, ``use_bin_type=True``."""
    ordered = {k: fields[k] for k in sorted(fields, key=lambda k: k.encode("utf-8"))}
    out = msgpack.packb(ordered, use_bin_type=True)
    assert isinstance(out, bytes)
    return out
