"""Frame sources: the latest-frame slot, image folders, video files, failures retried with back-off."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.errors import ConfigError
from agent.sources import FrameSlot, make_source
from agent.sources.settings import SourceSettings


def _wait(pred: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise TimeoutError


def test_slot_keeps_latest_and_counts_drops() -> None:
    slot = FrameSlot()
    for i in range(3):
        slot.put(np.full((2, 2, 3), i, np.uint8))
    frame = slot.take(0.1)
    assert frame is not None and frame.image is not None
    assert frame.seq == 3 and int(frame.image[0, 0, 0]) == 2
    assert slot.frames_in == 3 and slot.frames_dropped == 2
    assert slot.take(0.01) is None


def test_image_folder_paces_on_a_schedule(tmp_path: Path, eval_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fps is the rate delivered: the time reading a file takes is not added to the period (a
    fake clock in which every read takes 30 ms; 20 fps = a frame every 50 ms, not every 80)."""
    import agent.sources.images as images

    shutil.copy(eval_dir / "images" / "bus.jpg", tmp_path / "a.jpg")
    clock = [100.0]
    real_imread = cv2.imread

    def slow_imread(path: str, flags: int) -> object:
        clock[0] += 0.030
        return real_imread(path, flags)

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr("agent.sources.images.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("agent.sources.images.time.sleep", sleep)
    monkeypatch.setattr("agent.sources.images.cv2.imread", slow_imread)
    src = images.ImageFolderSource("images:x", FrameSlot(), folder=tmp_path, loop=True, fps=20.0)
    stamps = []
    for _, _ in zip(range(6), src.frames(), strict=False):
        stamps.append(clock[0])
    gaps = np.diff(stamps)
    assert np.allclose(gaps, 0.050), gaps


def test_image_folder_source(tmp_path: Path, eval_dir: Path) -> None:
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(eval_dir / "images" / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    slot = FrameSlot()
    src = make_source(SourceSettings(uri=f"images:{tmp_path}", loop=False), slot)
    assert src is not None
    src.start()
    _wait(lambda: src.status.state == "ended")  # the text file is skipped, the folder ends (loop off)
    src.stop()
    assert slot.frames_in == 2 and src.status.error is None


def test_video_source_reads_and_loops(eval_dir: Path) -> None:
    slot = FrameSlot()
    video = eval_dir / "tracking" / "vot15_bag" / "bag.avi"
    src = make_source(SourceSettings(uri=f"video:{video}", loop=True, fps=2000), slot)
    assert src is not None
    src.start()
    _wait(lambda: slot.frames_in > 200)  # 196 frames: past the end means it looped
    src.stop()
    frame = slot.latest or slot.take(0.1)
    assert frame is not None and frame.image is not None and frame.image.shape == (360, 480, 3)


def test_missing_source_is_retried_with_the_error_in_status(tmp_path: Path) -> None:
    slot = FrameSlot()
    src = make_source(SourceSettings(uri=f"video:{tmp_path / 'missing.mp4'}", retry_min=0.05, retry_max=0.1), slot)
    assert src is not None
    src.start()
    _wait(lambda: src.status.restarts >= 2)
    src.stop()
    assert "not found" in (src.status.error or "") and slot.frames_in == 0
    # and a source that comes back is picked up again
    video = tmp_path / "later.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    src2 = make_source(SourceSettings(uri=f"video:{video}", loop=False, retry_min=0.05), slot)
    assert src2 is not None
    src2.start()
    _wait(lambda: src2.status.state == "ended")
    src2.stop()
    assert slot.frames_in == 3


def test_bad_uris() -> None:
    with pytest.raises(ConfigError):
        make_source(SourceSettings(uri="camera:abc"), FrameSlot())
    with pytest.raises(ValueError):
        SourceSettings(uri="ftp://x")
    assert make_source(SourceSettings(uri="mqtt"), FrameSlot()) is None
