"""Segmentation service: YOLOv8-seg with the live score / IoU thresholds."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from agent.controls import Controls
from agent.pipelines.loader import ModelLoader
from agent.vision.segment import Segmenter


class SegmentService:
    def __init__(self, loader: ModelLoader, model: str, controls: Controls) -> None:
        self.loader = loader
        self.model_name = model
        self.controls = controls
        self._segmenter: Segmenter | None = None
        self._lock = threading.Lock()

    @property
    def segmenter(self) -> Segmenter:
        with self._lock:
            if self._segmenter is None:
                self._segmenter = Segmenter(self.loader.get(self.model_name))
            return self._segmenter

    def segment(self, image: np.ndarray) -> dict[str, Any]:
        th = self.controls.thresholds.segment
        return {"objects": self.segmenter.segment(image, score_th=th.score, iou_th=th.iou)}
