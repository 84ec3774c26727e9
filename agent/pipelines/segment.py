"""Segmentation service: YOLOv8-seg with the live score / IoU thresholds."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from agent.pipelines.live import Build, LiveThresholds, OneStep
from agent.pipelines.loader import ModelLoader
from agent.sections import Section
from agent.vision.segment import Segmenter


class SegmentThresholds(Section):
    section: ClassVar[str] = "segment"
    score: float = Field(0.4, ge=0, le=1, description="object score threshold")
    iou: float = Field(0.45, ge=0, le=1, description="NMS IoU threshold")


class SegmentService(OneStep):
    def __init__(self, loader: ModelLoader, model: str, controls: LiveThresholds) -> None:
        self.loader = loader
        self.model_name = model
        self.controls = controls
        self._segmenter: Segmenter | None = None
        self._lock = threading.Lock()

    @classmethod
    def build(cls, b: Build) -> SegmentService:
        return cls(b.loader, b.models.segmenter, b.controls)

    def warm_up(self) -> None:
        _ = self.segmenter

    def prepare(self, image: np.ndarray) -> dict[str, Any]:
        return self.segment(image)

    @property
    def segmenter(self) -> Segmenter:
        with self._lock:
            if self._segmenter is None:
                self._segmenter = Segmenter(self.loader.get(self.model_name))
            return self._segmenter

    def segment(self, image: np.ndarray) -> dict[str, Any]:
        th = self.controls.threshold(SegmentThresholds)
        return {"objects": self.segmenter.segment(image, score_th=th.score, iou_th=th.iou)}
