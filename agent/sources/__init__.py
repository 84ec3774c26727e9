"""Frame sources: each fills a latest-frame slot (older frames dropped and counted)."""

from agent.sources.base import Frame, FrameSlot, Source, SourceStatus
from agent.sources.factory import make_source

__all__ = ["Frame", "FrameSlot", "Source", "SourceStatus", "make_source"]
