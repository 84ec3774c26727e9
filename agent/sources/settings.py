"""The ``source`` settings section: where frames come from."""

from __future__ import annotations

from pydantic import Field, field_validator

from agent.sections import Section


class SourceSettings(Section):
    uri: str = Field("none", description="video:PATH | images:DIR | camera:N | /dev/videoN | rtsp://… | mqtt | none")
    loop: bool = Field(True, description="restart a video file / image folder at its end")
    fps: float | None = Field(None, gt=0, description="pace file sources to this rate (default: the file's own rate)")
    retry_min: float = Field(1.0, gt=0, description="first retry delay after a source failure, seconds")
    retry_max: float = Field(30.0, gt=0, description="longest retry delay, seconds")

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        ok = v in ("none", "mqtt") or v.startswith(
            ("video:", "images:", "camera:", "/dev/video", "rtsp://", "rtsps://", "http://", "https://")
        )
        if not ok:
            raise ValueError("must be video:PATH, images:DIR, camera:N, /dev/videoN, rtsp://…, mqtt or none")
        return v
