"""Build the source a ``source.uri`` names."""

from __future__ import annotations

from pathlib import Path

from agent.errors import ConfigError
from agent.sources.base import FrameSlot, Source
from agent.sources.capture import CaptureSource
from agent.sources.images import ImageFolderSource
from agent.sources.settings import SourceSettings


def make_source(cfg: SourceSettings, slot: FrameSlot) -> Source | None:
    """``None`` for ``none`` and ``mqtt`` (frames arrive by command or on ``frame/in``)."""
    uri = cfg.uri
    rmin, rmax = cfg.retry_min, cfg.retry_max
    if uri in ("none", "mqtt"):
        return None
    if uri.startswith("video:"):
        return CaptureSource(
            uri, slot, target=uri[6:], is_file=True, loop=cfg.loop, fps=cfg.fps, retry_min=rmin, retry_max=rmax
        )
    if uri.startswith("images:"):
        return ImageFolderSource(
            uri, slot, folder=Path(uri[7:]), loop=cfg.loop, fps=cfg.fps, retry_min=rmin, retry_max=rmax
        )
    if uri.startswith("camera:"):
        try:
            index = int(uri[7:])
        except ValueError:
            raise ConfigError(f"source.uri: camera index must be a number, got {uri!r}") from None
        return CaptureSource(uri, slot, target=index, is_file=False, retry_min=rmin, retry_max=rmax)
    if uri.startswith("/dev/video"):
        return CaptureSource(uri, slot, target=uri, is_file=False, retry_min=rmin, retry_max=rmax)
    return CaptureSource(uri, slot, target=uri, is_file=False, retry_min=rmin, retry_max=rmax)  # rtsp:// and http(s)://
