"""Local bank store: every entry of one bank of one feature model, kept on disk atomically.

A bank holds :class:`BankEntry` versions keyed by entry id, tombstones included (so a deletion
that arrives before or after the entry it deletes always wins by its clock). Merge is
last-writer-wins on the hybrid logical clock. Local changes are written to disk before they are
acknowledged; remote merges are batched by the caller with :meth:`EntryBank.save`.

The file is ``{state}/banks/{bank}-{model}.msgpack``: a msgpack map ``{v, bank, model, dim,
entries: [entry payload bytes…]}`` whose entries are the unsigned wire form. A file that cannot
be read at start is moved aside with a log line and the bank starts empty (the fleet refills it).

Order (class ids): every camera holding the same entries lists them in the same order. Entry
ids are made from the creation stamp (``{wall_ms:012x}{counter:06x}{random}``), so they sort in
creation order; labels are ordered by their earliest-created live entry and entries by id. A
rename keeps the ids, so a renamed person keeps their class id (ordering by version stamp would
move them to the end). Ids of another form (e.g. random ones) still give a fleet-wide order.

Negative examples (``neg`` entries, ``face/reject``) live in the same bank and sync like the rest,
but they are no samples: :meth:`live`, :meth:`labels` and :meth:`matrix` leave them out (a label
with only negatives has no class id); :meth:`negatives` lists them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import msgpack
import numpy as np

from agent.bank.clock import HLC, ClockSkewError, Stamp
from agent.bank.entry import BankEntry, RejectedEntry
from agent.storage import atomic_write, move_aside

log = logging.getLogger(__name__)
FILE_VERSION = 1
MAX_FILE_ENTRY_BYTES = 1 << 20


def new_entry_id(stamp: Stamp) -> str:
    """A fleet-unique id that sorts by creation time: hex wall ms, hex counter, 48 random bits."""
    return f"{stamp.wall_ms:012x}{stamp.counter:06x}{secrets.token_hex(6)}"


class EntryBank:
    def __init__(self, name: str, model: str, dim: int, state_dir: Path, clock: HLC, origin: str) -> None:
        self.name = name
        self.model = model
        self.dim = dim
        self.clock = clock
        self.origin = origin
        self.path = state_dir / "banks" / f"{name}-{model}.msgpack"
        self.lock = threading.RLock()
        self.entries: dict[str, BankEntry] = {}
        self.version = 0  # bumped on every change; caches key on it
        self.listeners: list[Callable[[list[BankEntry]], None]] = []  # local changes, for sync
        self.on_change: list[Callable[[], None]] = []  # any change, for caches
        self._load()

    # -- persistence ------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=True)
            if not isinstance(doc, dict) or doc.get("v") != FILE_VERSION or doc.get("dim") != self.dim:
                raise ValueError(f"not a version-{FILE_VERSION} bank of dim {self.dim}")
            for payload in doc["entries"]:
                entry = BankEntry.decode(
                    payload, key=None, expect_dim=self.dim, expect_bank=self.name, max_bytes=MAX_FILE_ENTRY_BYTES
                )
                self.entries[entry.id] = entry
        except (ValueError, KeyError, TypeError, RejectedEntry, msgpack.ExtraData, msgpack.FormatError) as exc:
            self.entries.clear()
            move_aside(self.path, str(exc))
            return
        for entry in self.entries.values():
            with contextlib.suppress(ClockSkewError):
                self.clock.observe(entry.hlc)
        log.info("bank %s: loaded %d live entries from %s", self.name, len(self.live()), self.path)

    def save(self) -> None:
        with self.lock:
            doc = {
                "v": FILE_VERSION,
                "bank": self.name,
                "model": self.model,
                "dim": self.dim,
                "entries": [e.encode(None) for e in self.entries.values()],
            }
            atomic_write(self.path, msgpack.packb(doc, use_bin_type=True))

    # -- reads ------------------------------------------------------------------------------
    def get(self, entry_id: str) -> BankEntry | None:
        with self.lock:
            return self.entries.get(entry_id)

    def snapshot(self) -> list[BankEntry]:
        """Every entry, tombstones included (a copy of the list, in no particular order)."""
        with self.lock:
            return list(self.entries.values())

    def live(self) -> list[BankEntry]:
        """Live samples (negatives left out) in the fleet-wide order: labels by their
        earliest-created entry, then by id."""
        with self.lock:
            live = sorted((e for e in self.entries.values() if not e.deleted and not e.neg), key=lambda e: e.id)
        first: dict[str, int] = {}
        for i, e in enumerate(live):
            first.setdefault(e.label, i)
        return sorted(live, key=lambda e: (first[e.label], e.id))

    def negatives(self) -> list[BankEntry]:
        """Live negative examples, by id (creation order)."""
        with self.lock:
            return sorted((e for e in self.entries.values() if not e.deleted and e.neg), key=lambda e: e.id)

    def labels(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.live():
            seen.setdefault(e.label, None)
        return list(seen)

    def matrix(self) -> tuple[np.ndarray, list[str]]:
        live = self.live()
        if not live:
            return np.zeros((0, self.dim), np.float32), []
        return np.stack([e.vector() for e in live]).astype(np.float32), [e.label for e in live]

    def count(self) -> dict[str, int]:
        live, negatives = self.live(), len(self.negatives())
        return {
            "entries": len(live),
            "labels": len({e.label for e in live}),
            "tombstones": len(self.entries) - len(live) - negatives,
            **({"negatives": negatives} if negatives else {}),
        }

    # -- local changes (durable before they return) -----------------------------------------
    def _commit_local(self, changed: list[BankEntry]) -> list[BankEntry]:
        if not changed:
            return changed
        previous = {e.id: self.entries.get(e.id) for e in changed}
        for e in changed:
            self.entries[e.id] = e
        try:
            self.save()
        except OSError:
            for eid, old in previous.items():  # nothing half-applied: memory follows the disk
                if old is None:
                    self.entries.pop(eid, None)
                else:
                    self.entries[eid] = old
            raise
        self._changed()
        for listener in list(self.listeners):
            listener(changed)
        return changed

    def _changed(self) -> None:
        self.version += 1
        for cb in list(self.on_change):
            cb()

    def _new(self, label: str, vector: np.ndarray, crop: bytes = b"", neg: bool = False) -> BankEntry:
        stamp = self.clock.tick()
        return BankEntry.from_vector(
            id=new_entry_id(stamp),
            bank=self.name,
            label=label,
            vector=np.asarray(vector, np.float32),
            hlc=stamp,
            origin=self.origin,
            crop=crop,
            neg=neg,
        )

    def add(self, label: str, vectors: Iterable[np.ndarray]) -> list[BankEntry]:
        with self.lock:
            return self._commit_local([self._new(label, v) for v in vectors])

    def add_many(self, items: Iterable[tuple[str, np.ndarray]]) -> list[BankEntry]:
        """Several labelled vectors in one durable write (imports): all or nothing."""
        with self.lock:
            return self._commit_local([self._new(label, v) for label, v in items])

    def add_samples(self, items: Iterable[tuple[str, np.ndarray, bytes, bool]]) -> list[BankEntry]:
        """``(label, vector, crop JPEG or b"", negative?)`` items in one durable write."""
        with self.lock:
            return self._commit_local([self._new(label, v, crop, neg) for label, v, crop, neg in items])

    def put(self, entries: Iterable[BankEntry]) -> list[BankEntry]:
        """Store ready-made versions (ids kept; ``bank/reembed``) in one durable write, each
        stamped now so that it wins over any older version of its id."""
        with self.lock:
            fresh = [dataclasses.replace(e, bank=self.name, hlc=self.clock.tick()) for e in entries]
            return self._commit_local(fresh)

    def delete(self, predicate: Callable[[BankEntry], bool]) -> list[BankEntry]:
        with self.lock:
            gone = [e.tombstone(self.clock.tick()) for e in self.entries.values() if not e.deleted and predicate(e)]
            return self._commit_local(gone)

    def relabel(self, label: str, to: str) -> list[BankEntry]:
        """Rename: each entry of ``label`` gets a newer version with the new label (same id)."""
        with self.lock:
            moved = [
                dataclasses.replace(e, label=to, hlc=self.clock.tick())
                for e in self.entries.values()
                if not e.deleted and e.label == label
            ]
            return self._commit_local(moved)

    # -- remote changes ---------------------------------------------------------------------
    def merge(self, entry: BankEntry) -> bool:
        """Apply a remote version if it is newer (LWW); the caller saves after a batch.

        Two different versions with the same stamp (only a forger or a bug can make them) are
        decided by their canonical bytes, so every camera keeps the same one whatever the order
        in which they arrive.
        """
        with self.lock:
            self.clock.observe(entry.hlc)  # ClockSkewError propagates: the caller rejects it
            current = self.entries.get(entry.id)
            if current is not None:
                if current.hlc > entry.hlc or current == entry:
                    return False
                if current.hlc == entry.hlc and current.canonical() >= entry.canonical():
                    return False
            self.entries[entry.id] = entry
            self._changed()
            return True
