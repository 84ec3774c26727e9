"""Crops, negatives and the review queue on real faces (SFace + RetinaFace, ../shared/eval)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.bank.review import ReviewRing
from agent.events import EventDetector
from agent.models import Manifest
from agent.pipelines.face_review import ReviewQueue
from agent.vision.face_crops import decode_crop, embed_crop, encode_crop
from agent.vision.face_negatives import NegativeIndex, veto
from agent.vision.faces import BankIndex, FacePipeline, FaceTracks
from agent.vision.runtime import OnnxModel

LFW = "faces_open/lfw_deepfunneled"


@pytest.fixture(scope="module")
def pipe(manifest: Manifest, models_dir: Path) -> FacePipeline:
    return FacePipeline(
        OnnxModel(manifest.get("retinaface"), models_dir), "retinaface", OnnxModel(manifest.get("sface"), models_dir)
    )


def photo(eval_dir: Path, who: str, n: int) -> np.ndarray:
    img = cv2.imread(str(eval_dir / LFW / who / f"{who}_{n:04d}.jpg"))
    assert img is not None
    return img


def test_jpeg_crops_keep_the_vector(pipe: FacePipeline, eval_dir: Path) -> None:
    """What bank/reembed starts from: a q90 JPEG of the aligned crop gives nearly the same vector."""
    cosines, sizes = [], []
    for who in ("George_W_Bush", "Jeb_Bush", "Colin_Powell", "Serena_Williams"):
        for n in (1, 2, 3):
            img = photo(eval_dir, who, n)
            face = max(pipe.detect(img), key=lambda f: f.area)
            crop = pipe.align(img, face)
            jpeg = encode_crop(crop)
            sizes.append(len(jpeg))
            back = decode_crop(jpeg, 112)
            assert back is not None and back.shape == (112, 112, 3)
            cosines.append(float(pipe.embed(img, face) @ embed_crop(pipe.embedder, back)))
    print(f"crop JPEG bytes {min(sizes)}..{max(sizes)}, cos(raw, from JPEG) min {min(cosines):.4f}")
    assert min(cosines) > 0.98 and max(sizes) < 8 << 10
    assert encode_crop(crop, max_bytes=200) == b""  # nothing fits: no crop rather than a broken one
    assert decode_crop(b"\xff\xd8\xffgarbage", 112) is None and decode_crop(b"GIF89a", 112) is None


def test_a_negative_turns_the_stranger_unknown_and_leaves_the_person(pipe: FacePipeline, eval_dir: Path) -> None:
    def emb(who: str, n: int) -> np.ndarray:
        img = photo(eval_dir, who, n)
        return pipe.embed(img, max(pipe.detect(img), key=lambda f: f.area))

    george, jeb = [emb("George_W_Bush", n) for n in (1, 2, 3)], [emb("Jeb_Bush", n) for n in (1, 3, 4)]
    index = BankIndex(np.stack([george[1]]), ["george"])
    negatives = NegativeIndex(np.stack([jeb[1]]), ["george"])
    before = index.match(jeb[0], 0.65)
    assert before.label == "george"
    assert veto(before, jeb[0], negatives).label == "unknown"
    assert veto(before, jeb[0], NegativeIndex(np.stack([jeb[1]]), ["someone_else"])).label == "george"
    for g in (george[0], george[2]):
        m = index.match(g, 0.65)
        assert veto(m, g, negatives) == m and m.label == "george"


def test_an_unknown_that_stays_is_queued_once_with_its_best_view(
    pipe: FacePipeline, eval_dir: Path, tmp_path: Path
) -> None:
    ring = ReviewRing(tmp_path / "review", keep=5, retention=3600)
    now = [1_800_000_000.0]
    queue = ReviewQueue(ring, lambda: "abc123abc123", flush=0.0, clock=lambda: now[0])
    tracks, events = FaceTracks(), EventDetector("cam", debounce=3, class_frames=3)
    big = photo(eval_dir, "Jeb_Bush", 1)
    small = cv2.resize(big, (210, 210))
    seen, tagged = [], []
    for k, img in enumerate([small, small, small, big, small]):
        found = pipe.analyse(
            cv2.copyMakeBorder(img, 0, 250 - img.shape[0], 0, 250 - img.shape[1], cv2.BORDER_CONSTANT), None, []
        )
        entries = pipe.entries(found, tracks)
        queue.observe(found, entries)
        tagged.append(entries[0].get("unknown_id"))
        seen += events.feed("faces", {"ts": now[0], "seq": k, "faces": entries})
        now[0] += 0.1
    assert tagged[:2] == [None, None] and len(set(tagged[2:])) == 1 and tagged[2]
    (item,) = ring.newest_first()
    assert item.id == tagged[2] and item.frames == 3 and item.box[2] > 80  # the big view replaced the first
    assert [e.type for e in seen] == ["appeared", "queued"] and seen[1].body["unknown_id"] == item.id
    left = events.tick(now[0] + 10)
    assert left[0].type == "left" and left[0].body["unknown_ids"] == [item.id]
