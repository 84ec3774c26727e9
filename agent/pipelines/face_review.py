"""Live unknown face tracks → the review queue (Frigate's Train tab, without the person coming back).

A face track is an *unknown that stays* once its published (voted) label is ``unknown`` and its
single-shot answer has been ``unknown`` on ``min_frames`` frames (the vote's majority, 3): a
known person's first, not yet voted frames never queue them. Such a track gets one review item,
written at once (so the ``unknown_id`` in the result and the ``queued`` event refer to a stored
item), then improved when a better view of the face comes (detector score x face size), at most
every ``flush`` seconds and once more when the track ends. Result entries of the track carry
``unknown_id`` from then on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.bank.review import ReviewItem, ReviewRing, new_review_id
from agent.vision.face_crops import encode_crop
from agent.vision.face_detect import Face
from agent.vision.faces import UNKNOWN, FaceAnalysis

log = logging.getLogger(__name__)
TRACK_GONE_S = 2.0  # a track unseen this long has ended (FaceTracks drops it after 3 frames)


def view_quality(face: Face) -> float:
    """How good a view of a face is, for picking a track's best crop: detector score x size."""
    return float(face.score) * float(min(face.box[2], face.box[3]))


@dataclass
class _Track:
    seen: float
    unknown: int = 0
    item: ReviewItem | None = None
    pending: tuple[float, np.ndarray, np.ndarray, Face] | None = None  # better view not yet written
    written: float = 0.0


class ReviewQueue:
    def __init__(
        self,
        ring: ReviewRing,
        model: Callable[[], str],
        *,
        min_frames: int = 3,
        flush: float = 1.0,
        crop_bytes: int = 48 << 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ring = ring
        self.model = model
        self.min_frames = min_frames
        self.flush = flush
        self.crop_bytes = crop_bytes
        self.clock = clock
        self._tracks: dict[int, _Track] = {}
        self._last_purge = 0.0
        self.write_errors = 0

    def observe(self, found: FaceAnalysis, entries: list[dict[str, Any]]) -> None:
        """One live frame (in frame order): queue / improve unknown tracks, tag their entries."""
        if self.ring.keep == 0 or len(found.embeddings) != len(entries):
            return
        now = self.clock()
        for face, match, vec, crop, entry in zip(
            found.faces, found.matches, found.embeddings, found.crops, entries, strict=True
        ):
            tid = entry.get("track_id")
            if tid is None:
                continue
            t = self._tracks.setdefault(tid, _Track(now))
            t.seen = now
            if match.label != UNKNOWN or entry.get("label") != UNKNOWN:
                continue
            t.unknown += 1
            q = view_quality(face)
            if t.item is None:
                if t.unknown >= self.min_frames:
                    t.item = self._create(now, q, vec, crop, face)
                    t.written = now
            else:
                t.item.last_seen = now
                t.item.frames += 1
                if q > t.item.quality and (t.pending is None or q > t.pending[0]):
                    t.pending = (q, vec, crop, face)
                if now - t.written >= self.flush:
                    self._update(t, now)
            if t.item is not None and self.ring.get(t.item.id) is not None:
                entry["unknown_id"] = t.item.id
        for tid, t in list(self._tracks.items()):
            if now - t.seen > TRACK_GONE_S:
                if t.item is not None:
                    self._update(t, now)
                del self._tracks[tid]
        if now - self._last_purge > 60:
            self._last_purge = now
            self.ring.purge(now)

    def _create(self, now: float, q: float, vec: np.ndarray, crop: np.ndarray, face: Face) -> ReviewItem | None:
        item = ReviewItem(
            id=new_review_id(now),
            created=now,
            updated=now,
            last_seen=now,
            frames=1,
            quality=q,
            box=[round(v) for v in face.box],
            score=float(face.score),
            model=self.model(),
            vec=np.asarray(vec, "<f4").tobytes(),
            crop=encode_crop(crop, self.crop_bytes),
        )
        if not item.crop or not self._write(item):
            return None
        return item

    def _update(self, t: _Track, now: float) -> None:
        assert t.item is not None
        if self.ring.get(t.item.id) is None:  # dismissed, purged or pushed out of the ring
            t.pending = None
            return
        if t.pending is not None:
            q, vec, crop, face = t.pending
            jpeg = encode_crop(crop, self.crop_bytes)
            if jpeg:
                t.item.quality, t.item.crop, t.item.vec = q, jpeg, np.asarray(vec, "<f4").tobytes()
                t.item.box, t.item.score = [round(v) for v in face.box], float(face.score)
            t.pending = None
        t.item.updated = now
        t.written = now
        self._write(t.item)

    def _write(self, item: ReviewItem) -> bool:
        try:
            self.ring.write(item)
            return True
        except OSError as exc:  # a full disk must not stop recognition
            self.write_errors += 1
            log.warning("review queue: cannot store unknown face %s: %s", item.id, exc)
            return False
