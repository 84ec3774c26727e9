"""The face library: corrections, samples' crops, the review queue of unknown faces.

Commands in :mod:`agent.commands.face_library` call this; it works on the faces bank through
:class:`~agent.pipelines.faces.FaceService` (negatives and crops are bank entries, so they sync
like every sample) and on the review ring (:mod:`agent.bank.review`, local to the camera).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.bank.entry import BankEntry
from agent.bank.review import ReviewItem, ReviewRing
from agent.errors import CommandError
from agent.pipelines.face_review import ReviewQueue
from agent.pipelines.faces import FaceService, FaceThresholds, created_ms
from agent.pipelines.live import Build
from agent.pipelines.reembed import Reembed
from agent.vision.face_crops import decode_crop, embed_crop, encode_crop
from agent.vision.faces import UNKNOWN, box_iou

SAME_FACE = 0.95  # 0.5 + 0.5·cos (cos 0.90): a "negative" this close to a sample of X is that sample
BOX_IOU = 0.3  # a face must overlap the request's box this much to be the one meant


class FaceLibrary:
    def __init__(self, faces: FaceService, ring: ReviewRing, model: str, clock: Callable[[], float] = time.time):
        self.faces = faces
        self.ring = ring
        self.model = model
        self.queue = ReviewQueue(ring, lambda: self.model, crop_bytes=faces.crop_bytes, clock=clock)
        faces.on_live.append(self.queue.observe)

    # -- helpers ------------------------------------------------------------------------------
    def _vector_of(self, item: ReviewItem) -> np.ndarray:
        """An item's embedding in the current model (re-embedded from its crop if it is older)."""
        vec = item.vector()
        if item.model == self.model and vec.shape == (self.faces.bank.dim,):
            return vec
        pipe = self.faces.pipeline
        crop = decode_crop(item.crop, pipe.align_size)
        if crop is None:
            raise CommandError("conflict", f"unknown {item.id} has no usable crop to embed with the current model")
        return embed_crop(pipe.embedder, crop)

    def _crop_for_entry(self, jpeg: bytes) -> bytes:
        if len(jpeg) <= self.faces.crop_bytes:
            return jpeg
        crop = decode_crop(jpeg, self.faces.pipeline.align_size)
        return b"" if crop is None else encode_crop(crop, self.faces.crop_bytes)

    def _item(self, unknown_id: str) -> ReviewItem:
        item = self.ring.get(unknown_id)
        if item is None:
            raise CommandError("not_found", f"no unknown face {unknown_id!r} in the review queue (face/unknowns)")
        return item

    # -- corrections --------------------------------------------------------------------------
    def reject(
        self, label: str, image: np.ndarray | None, box: list[float] | None, unknown_id: str | None
    ) -> dict[str, Any]:
        """Store "this face is not ``label``" as a negative example of ``label``."""
        bank = self.faces.bank
        if label not in bank.labels():
            raise CommandError("not_found", f"no enrolled face is labelled {label!r}")
        info: dict[str, Any] = {}
        if unknown_id is not None:
            item = self._item(unknown_id)
            vec, crop = self._vector_of(item), self._crop_for_entry(item.crop)
            info = {"unknown_id": unknown_id}
        else:
            assert image is not None
            vec, crop, info = self._pick_face(label, image, box)
        samples = [e for e in bank.live() if e.label == label]
        if samples:
            sims = 0.5 + 0.5 * (np.stack([e.vector() for e in samples]) @ vec)
            best = int(np.argmax(sims))
            if sims[best] >= SAME_FACE:
                raise CommandError(
                    "conflict",
                    f"this face is {label!r}'s enrolled sample {samples[best].id} (similarity {sims[best]:.3f}): "
                    "forget that sample (face/forget {label, sample}) instead of rejecting it",
                )
        (entry,) = bank.add_samples([(label, vec, crop, True)])
        if unknown_id is not None:
            self.ring.remove(unknown_id)
        return {
            "label": label,
            "negative": entry.id,
            "negatives": sum(e.label == label for e in bank.negatives()),
            **info,
        }

    def _pick_face(
        self, label: str, image: np.ndarray, box: list[float] | None
    ) -> tuple[np.ndarray, bytes, dict[str, Any]]:
        """The face of ``image`` meant: the one at ``box``; else the one named ``label``
        (the best if several); else the largest."""
        th = self.faces.controls.threshold(FaceThresholds)
        found = self.faces.analyse(image, corrections=False)
        if not found.faces:
            raise CommandError("not_found", f"no face found in the image (face.detect threshold {th.detect})")
        n = range(len(found.faces))
        if box is not None:
            b = (box[0], box[1], box[2], box[3])
            i = max(n, key=lambda k: box_iou(found.faces[k].box, b))
            if box_iou(found.faces[i].box, b) < BOX_IOU:
                raise CommandError("not_found", f"no face at box {box} (IoU >= {BOX_IOU} needed)")
        else:
            named = [k for k in n if found.matches[k].label == label]
            i = max(named or n, key=lambda k: found.matches[k].score_of(label) if named else found.faces[k].area)
        m, face = found.matches[i], found.faces[i]
        info = {
            "was": m.label,
            "similarity": round(m.score_of(label), 4),
            "box": [round(v) for v in face.box],
            "score": round(face.score, 4),
        }
        return found.embeddings[i], encode_crop(found.crops[i], self.faces.crop_bytes), info

    # -- samples ------------------------------------------------------------------------------
    def sample(self, sample_id: str) -> dict[str, Any]:
        """A sample's, negative's or queued unknown's crop (JPEG bytes) with what it is."""
        entry: BankEntry | None = self.faces.bank.get(sample_id)
        if entry is not None and not entry.deleted:
            if not entry.crop:
                raise CommandError("not_found", f"sample {sample_id} has no crop (enrolled or imported without one)")
            return {
                "id": entry.id,
                "kind": "negative" if entry.neg else "sample",
                "label": entry.label,
                "origin": entry.origin,
                "added": round(created_ms(entry.id) / 1000, 3),
                "crop": entry.crop,
            }
        item = self.ring.get(sample_id)
        if item is not None:
            return {
                "id": item.id,
                "kind": "unknown",
                "label": UNKNOWN,
                "added": round(item.created, 3),
                "crop": item.crop,
            }
        raise CommandError("not_found", f"no sample, negative or unknown face has id {sample_id!r}")

    # -- the review queue ---------------------------------------------------------------------
    def unknowns(self, crops: bool = False) -> dict[str, Any]:
        self.ring.purge()
        return {"unknowns": [i.summary(crop=crops) for i in self.ring.newest_first()], **self.ring.state()}

    def enrol_unknown(self, label: str, unknown_id: str) -> dict[str, Any]:
        """Enrol a queued unknown face as ``label`` (a new person or one more sample)."""
        item = self._item(unknown_id)
        vec = self._vector_of(item)
        (entry,) = self.faces.bank.add_samples([(label, vec, self._crop_for_entry(item.crop), False)])
        self.ring.remove(unknown_id)
        face = {"label": label, "box": item.box, "score": round(item.score, 4), "sample": entry.id}
        return {"label": label, "added": 1, "faces": [face], "unknown_id": unknown_id}

    def dismiss(self, unknown_id: str | None) -> dict[str, Any]:
        """Drop one queued unknown face, or every one (``None``)."""
        if unknown_id is None:
            return {"removed": self.ring.clear()}
        if not self.ring.remove(unknown_id):
            raise CommandError("not_found", f"no unknown face {unknown_id!r} in the review queue")
        return {"removed": 1, "unknown_id": unknown_id}

    def state(self) -> dict[str, Any]:
        return {**self.ring.state(), "write_errors": self.queue.write_errors}


def companions(b: Build, faces: FaceService) -> list[object]:
    """The faces pipeline's other services (its registry entry's ``companions``): the library
    (review queue of unknown faces, corrections) and the re-embedding job."""
    review = b.settings.faces.review
    ring = ReviewRing(b.state_dir / "review", review.keep, review.retention_hours * 3600)
    model = b.loader.spec(b.settings.models.face_embedder).fingerprint
    return [FaceLibrary(faces, ring, model), Reembed(faces)]
