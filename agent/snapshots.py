"""The ``snapshot`` command's service: the latest frame as JPEG, the latest results drawn on it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agent.sources.base import Frame
from agent.vision.draw import draw_results, encode_jpeg


class Snapshots:
    def __init__(self, last: Callable[[], Mapping[str, Any]], publish: Callable[[bytes], None]) -> None:
        self.last = last  # the latest result of each kind (the engine's)
        self.publish = publish  # to maix/{dev}/snapshot

    def __call__(self, frame: Frame, draw: bool) -> int:
        assert frame.image is not None
        image = draw_results(frame.image, dict(self.last())) if draw else frame.image
        jpeg = encode_jpeg(image)
        self.publish(jpeg)
        return len(jpeg)
