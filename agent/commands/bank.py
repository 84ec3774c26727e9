"""bank/export {bank, format} and bank/import {bank, format, data}: MaixPy files and a native form.

``maixpy`` is byte-compatible with MaixPy: ``faces.bin`` for the faces bank, ``my_classes.bin``
(class features + unlabelled samples) for the classes bank. ``native`` is a msgpack map
``{v: 1, bank, model, dim, entries: [{label, vec}]}`` (vec = float32 little-endian bytes).
"""

from __future__ import annotations

from typing import Any, Literal

import msgpack
import numpy as np

from agent.bank.maixpy import read_classes, read_faces, write_classes, write_faces
from agent.commands.base import DataBytes, RequestModel, command
from agent.commands.context import Context
from agent.errors import CommandError
from agent.pipelines.classifier import ClassifierService
from agent.pipelines.faces import FaceService


class Export(RequestModel):
    bank: Literal["faces", "classes"]
    format: Literal["maixpy", "native"] = "native"


class Import(RequestModel):
    bank: Literal["faces", "classes"]
    format: Literal["maixpy", "native"] = "native"
    data: DataBytes


def _native(bank: Any, entries: list[tuple[str, np.ndarray]]) -> bytes:
    doc = {
        "v": 1,
        "bank": bank.name,
        "model": bank.model,
        "dim": bank.dim,
        "entries": [{"label": lb, "vec": np.asarray(v, "<f4").tobytes()} for lb, v in entries],
    }
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


def _read_native(data: bytes, bank: Any) -> list[tuple[str, np.ndarray]]:
    try:
        doc = msgpack.unpackb(
            data, raw=False, max_bin_len=len(data), max_str_len=len(data), max_array_len=1_000_000, max_map_len=16
        )
        if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("entries"), list):
            raise ValueError("not a native bank export (v 1)")
        if doc.get("dim") != bank.dim:
            raise CommandError("conflict", f"export has feature length {doc.get('dim')}, this model has {bank.dim}")
        out = []
        for e in doc["entries"]:
            vec = np.frombuffer(e["vec"], "<f4")
            label = e["label"]
            if not isinstance(label, str) or not label or vec.shape != (bank.dim,) or not np.isfinite(vec).all():
                raise ValueError("bad entry")
            out.append((label, vec.copy()))
        return out
    except CommandError:
        raise
    except (ValueError, KeyError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CommandError("bad_request", f"data: {exc}") from None


@command("bank", "export", Export)
def export(req: Export, ctx: Context) -> dict[str, Any]:
    """The bank as bytes (msgpack bin, base64 in JSON)."""
    if req.bank == "faces":
        bank = ctx.service(FaceService).bank
        entries = [(e.label, e.vector()) for e in bank.live()]
        data = write_faces(entries) if req.format == "maixpy" else _native(bank, entries)
        return {"bank": "faces", "format": req.format, "entries": len(entries), "data": data}
    svc = ctx.service(ClassifierService)
    bank = svc.bank
    if req.format == "native":
        entries = [(e.label, e.vector()) for e in bank.live()]
        return {"bank": "classes", "format": "native", "entries": len(entries), "data": _native(bank, entries)}
    labels, classes = svc.classifier().class_features()
    if not labels:
        raise CommandError("not_found", "no classes to export (MaixPy's format needs at least one)")
    samples = np.stack(svc.samples) if svc.samples else np.zeros((0, bank.dim), np.float32)
    data = write_classes(labels, classes, samples)
    return {"bank": "classes", "format": "maixpy", "entries": len(labels), "samples": len(samples), "data": data}


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


@command("bank", "import", Import)
def import_(req: Import, ctx: Context) -> dict[str, Any]:
    """Add the file's entries to the bank (and sync them to the fleet)."""
    if req.bank == "faces":
        bank = ctx.service(FaceService).bank
        records = read_faces(req.data, expect_dim=bank.dim) if req.format == "maixpy" else _read_native(req.data, bank)
        if any(not label for label, _ in records):
            raise CommandError("bad_request", "data: a face record has an empty label")
        unit = [(label, _unit(vec)) for label, vec in records]
        bank.add_many(unit)  # one durable write: a file is imported whole or not at all
        return {"bank": "faces", "added": len(records)}
    svc = ctx.service(ClassifierService)
    bank = svc.bank
    if req.format == "native":
        records = _read_native(req.data, bank)
        bank.add_many(records)
        return {"bank": "classes", "added": len(records), "samples": 0}
    parsed = read_classes(req.data, expect_dim=bank.dim)
    labels = parsed.labels or [f"Class {i + 1}" for i in range(len(parsed.classes))]
    if any(not label for label in labels):
        raise CommandError("bad_request", "data: a class has an empty label")
    bank.add_many(zip(labels, parsed.classes, strict=True))
    if len(parsed.samples):
        svc.import_samples(parsed.samples)
    return {"bank": "classes", "added": len(labels), "samples": len(parsed.samples)}


COMMANDS = [export, import_]
