"""The review queue on disk: the best crop and embedding of each recent unknown face track.

A bounded ring of at most ``keep`` items (``faces.review.keep``; 0 = off), the oldest dropped
first, each older than ``retention`` seconds purged. One file per item,
``{state}/review/{id}.msgpack``, written atomically (temp file, fsync, rename): a crash leaves
every item either as it was or as it became; an unreadable file is moved aside at start.

Item file (msgpack map, v 1)::

    {v: 1, id, created, updated, last_seen, frames, quality, box: [x, y, w, h], score,
     model, vec: <float32 LE bytes>, crop: <JPEG bytes>}

``id`` is ``{created ms:012x}{random:8 hex}`` (sorts by creation); ``model`` the embedder's
fingerprint (an item from another model is re-embedded from its crop when enrolled).
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from agent.bank.entry import JPEG_MAGIC, MAX_CROP_BYTES
from agent.storage import atomic_write, move_aside

log = logging.getLogger(__name__)
ITEM_VERSION = 1
ID_RE = re.compile(r"[0-9a-f]{20}")
MAX_ITEM_BYTES = MAX_CROP_BYTES + (1 << 20)


def new_review_id(now: float) -> str:
    return f"{int(now * 1000):012x}{secrets.token_hex(4)}"


@dataclass
class ReviewItem:
    id: str
    created: float
    updated: float
    last_seen: float
    frames: int
    quality: float
    box: list[int]
    score: float
    model: str
    vec: bytes
    crop: bytes

    def vector(self) -> np.ndarray:
        return np.frombuffer(self.vec, "<f4").astype(np.float32)

    def summary(self, *, crop: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "created": round(self.created, 3),
            "last_seen": round(self.last_seen, 3),
            "frames": self.frames,
            "quality": round(self.quality, 2),
            "box": self.box,
            "score": round(self.score, 4),
            "crop_bytes": len(self.crop),
        }
        if crop:
            out["crop"] = self.crop
        return out

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb({"v": ITEM_VERSION, **asdict(self)}, use_bin_type=True)
        return packed

    @classmethod
    def decode(cls, raw: bytes) -> ReviewItem:
        doc = msgpack.unpackb(raw, raw=False, max_bin_len=MAX_ITEM_BYTES, max_str_len=256, max_array_len=16)
        if not isinstance(doc, dict) or doc.pop("v", None) != ITEM_VERSION:
            raise ValueError(f"not a version-{ITEM_VERSION} review item")
        item = cls(**doc)
        if not (
            isinstance(item.id, str)
            and ID_RE.fullmatch(item.id)
            and isinstance(item.vec, bytes)
            and len(item.vec) % 4 == 0
            and item.vec
            and isinstance(item.crop, bytes)
            and item.crop.startswith(JPEG_MAGIC)
            and np.isfinite(item.vector()).all()
            and all(type(v) in (int, float) and np.isfinite(v) for v in (item.created, item.updated, item.last_seen))
            and all(type(v) in (int, float) and np.isfinite(v) for v in (item.quality, item.score))
            and type(item.frames) is int
            and isinstance(item.model, str)
            and isinstance(item.box, list)
            and len(item.box) == 4
            and all(type(v) is int for v in item.box)
        ):
            raise ValueError("bad review item fields")
        return item


class ReviewRing:
    """The ring; thread-safe (the vision worker adds, commands read and remove)."""

    def __init__(self, folder: Path, keep: int, retention: float, clock: Callable[[], float] = time.time) -> None:
        if keep < 0 or retention <= 0:
            raise ValueError("need keep >= 0 and retention > 0")
        self.folder = folder
        self.keep = keep
        self.retention = retention
        self.clock = clock
        self.lock = threading.RLock()
        self.items: dict[str, ReviewItem] = {}  # insertion order = creation order
        self.purged = 0
        self._load()

    # -- persistence ------------------------------------------------------------------------
    def _path(self, item_id: str) -> Path:
        return self.folder / f"{item_id}.msgpack"

    def _load(self) -> None:
        if not self.folder.is_dir():
            return
        found: list[ReviewItem] = []
        for path in sorted(self.folder.glob("*.msgpack")):
            try:
                item = ReviewItem.decode(path.read_bytes())
                if path.stem != item.id:
                    raise ValueError(f"file name differs from the item id {item.id!r}")
            except (ValueError, TypeError, KeyError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
                move_aside(path, f"review item: {e}")
                continue
            found.append(item)
        for item in sorted(found, key=lambda i: i.id):
            self.items[item.id] = item
        self.purge()
        if self.items:
            log.info("review queue: %d unknown faces from %s", len(self.items), self.folder)

    def write(self, item: ReviewItem) -> None:
        """Store a new or changed item (durable before it returns), then keep the ring bounded."""
        with self.lock:
            if self.keep == 0:
                return
            atomic_write(self._path(item.id), item.encode())
            self.items[item.id] = item
            while len(self.items) > self.keep:
                self._drop(next(iter(self.items)))

    def _drop(self, item_id: str) -> bool:
        item = self.items.pop(item_id, None)
        if item is None:
            return False
        self._path(item_id).unlink(missing_ok=True)
        return True

    # -- reads and removals -----------------------------------------------------------------
    def get(self, item_id: str) -> ReviewItem | None:
        with self.lock:
            return self.items.get(item_id)

    def newest_first(self) -> list[ReviewItem]:
        with self.lock:
            return list(reversed(self.items.values()))

    def remove(self, item_id: str) -> bool:
        with self.lock:
            return self._drop(item_id)

    def clear(self) -> int:
        with self.lock:
            ids = list(self.items)
            for item_id in ids:
                self._drop(item_id)
            return len(ids)

    def purge(self, now: float | None = None) -> int:
        """Drop the items last seen more than ``retention`` seconds ago; how many went."""
        now = self.clock() if now is None else now
        with self.lock:
            old = [i.id for i in self.items.values() if now - i.last_seen > self.retention]
            for item_id in old:
                self._drop(item_id)
            self.purged += len(old)
            return len(old)

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"items": len(self.items), "keep": self.keep, "retention_hours": round(self.retention / 3600, 3)}
