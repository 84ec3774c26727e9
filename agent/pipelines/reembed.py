"""``bank/reembed``: recompute the faces bank from the stored crops after the face model changed.

Banks are kept per feature model (``{state}/banks/faces-{fingerprint}.msgpack``), so a new
embedder starts with an empty bank while the old model's bank stays on disk, crops included.
The job reads every other faces bank there, takes the newest version of each entry id, and for
each one the current bank does not hold yet embeds its crop with the current model and stores
the result under the **same id**, label, origin, crop and kind (sample / negative); tombstones
are carried over as tombstones. Same ids make it idempotent and fleet-safe: two cameras that
re-embed the same old bank write versions of the same entries (last writer wins) instead of
doubling every sample. Entries without a crop (enrolled before crops were kept, MaixPy
imports) cannot be re-embedded and are counted as ``no_crop``.

It runs on a thread of its own, in batches (each one durable write of the bank and synced to
the fleet as usual) of ``BATCH`` entries, larger for big banks so that a run makes at most
``MAX_WRITES`` writes; ``state.reembed`` shows its progress entry by entry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from agent.bank.entry import BankEntry, RejectedEntry
from agent.bank.store import MAX_FILE_ENTRY_BYTES
from agent.errors import CommandError
from agent.pipelines.faces import FaceService
from agent.vision.face_crops import decode_crop, embed_crop

log = logging.getLogger(__name__)
BATCH = 32
MAX_WRITES = 20  # a batch is a whole-bank durable write: at most this many per run (big banks)
PROGRESS_S = 1.0


def read_bank_file(path: Path, bank: str) -> list[BankEntry]:
    """Every entry of a bank file of any model (its own dim); [] if it cannot be read."""
    try:
        doc = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=True)
        dim = doc["dim"]
        return [
            BankEntry.decode(p, key=None, expect_dim=dim, expect_bank=bank, max_bytes=MAX_FILE_ENTRY_BYTES)
            for p in doc["entries"]
        ]
    except (OSError, ValueError, KeyError, TypeError, RejectedEntry, msgpack.ExtraData, msgpack.FormatError) as exc:
        log.warning("reembed: cannot read %s: %s", path, exc)
        return []


class Reembed:
    def __init__(self, faces: FaceService, clock: Callable[[], float] = time.monotonic) -> None:
        self.faces = faces
        self.bank = faces.bank
        self.clock = clock
        self.on_progress: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state: dict[str, Any] = {"state": "idle"}
        self._available: int | None = None  # entries other models' banks could give (lazy)

    def sources(self) -> list[Path]:
        folder = self.bank.path.parent
        return sorted(p for p in folder.glob(f"{self.bank.name}-*.msgpack") if p != self.bank.path)

    def candidates(self) -> tuple[list[BankEntry], int, list[str]]:
        """(entries to re-embed, live entries without a crop, source models)."""
        newest: dict[str, BankEntry] = {}
        models = []
        for path in self.sources():
            models.append(path.stem.split("-", 1)[1])
            for e in read_bank_file(path, self.bank.name):
                if e.id not in newest or newest[e.id].hlc < e.hlc:
                    newest[e.id] = e
        todo, no_crop = [], 0
        for e in sorted(newest.values(), key=lambda e: e.id):
            if self.bank.get(e.id) is not None:
                continue
            if not e.deleted and not e.crop:
                no_crop += 1
                continue
            todo.append(e)
        return todo, no_crop, models

    def start(self) -> dict[str, Any]:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise CommandError("conflict", "a re-embedding is running already (see state.reembed)")
            todo, no_crop, models = self.candidates()
            self._state = {
                "state": "running",
                "from": models,
                "total": len(todo),
                "done": 0,
                "added": 0,
                "no_crop": no_crop,
                "bad_crop": 0,
                "seconds": 0.0,
            }
            reply = dict(self._state)
            if not todo:
                self._state["state"] = "done"
                return {**reply, "state": "done"}
            self._thread = threading.Thread(target=self._run, args=(todo,), name="reembed", daemon=True)
            self._thread.start()
            return reply

    def wait(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    def state(self) -> dict[str, Any]:
        """Progress, and ``available``: how many entries of other models' faces banks this
        bank lacks and could get from their crops (counted once, again after each run)."""
        if self._available is None and self._state["state"] != "running":
            todo, _, models = self.candidates()
            self._available = len(todo)
            if todo and not self.bank.live():
                log.warning(
                    "faces bank is empty but %d entries with crops exist for other face models (%s): "
                    "send bank/reembed to recompute them with this one",
                    len(todo),
                    ", ".join(models),
                )
        with self._lock:
            return {**self._state, "available": self._available}

    def _run(self, todo: list[BankEntry]) -> None:
        t0 = last = self.clock()
        try:
            pipe = self.faces.pipeline
            batch = max(BATCH, -(-len(todo) // MAX_WRITES))
            for i in range(0, len(todo), batch):
                out = []
                for k, e in enumerate(todo[i : i + batch]):
                    with self._lock:
                        self._state["done"] = i + k
                    if self.clock() - last >= PROGRESS_S:
                        last = self.clock()
                        self._progress()
                    if e.deleted:
                        out.append(
                            BankEntry(e.id, e.bank, e.label, b"", self.bank.dim, e.hlc, e.origin, True, b"", e.neg)
                        )
                        continue
                    crop = decode_crop(e.crop, pipe.align_size)
                    if crop is None:
                        with self._lock:
                            self._state["bad_crop"] += 1
                        continue
                    vec = embed_crop(pipe.embedder, crop)
                    out.append(
                        BankEntry.from_vector(
                            id=e.id,
                            bank=e.bank,
                            label=e.label,
                            vector=vec,
                            hlc=e.hlc,
                            origin=e.origin,
                            crop=e.crop,
                            neg=e.neg,
                        )
                    )
                with self.bank.lock:  # an id that arrived from the fleet meanwhile is kept as it is
                    stored = self.bank.put(x for x in out if self.bank.get(x.id) is None)
                with self._lock:
                    self._state["done"] = min(len(todo), i + batch)
                    self._state["added"] += sum(not x.deleted for x in stored)
                    self._state["seconds"] = round(self.clock() - t0, 3)
            with self._lock:
                self._state["state"] = "done"
                self._available = None
            log.info("reembed: %s", self._state)
        except Exception as exc:
            log.exception("reembed failed")
            with self._lock:
                self._state.update(state="failed", error=str(exc))
        self._progress()

    def _progress(self) -> None:
        for cb in list(self.on_progress):
            try:
                cb()
            except Exception:
                log.exception("reembed progress callback failed")
