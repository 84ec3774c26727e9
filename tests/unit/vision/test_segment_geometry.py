"""Pure geometry of the segmentation pipeline: letterbox, NMS, mask → polygons."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from agent.vision.polygons import corner_grid, mask_to_polygons, polygons_area
from agent.vision.yolo_decode import letterbox, letterbox_geometry


def _raster(polys: list[list[int]], h: int, w: int) -> np.ndarray:
    rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    return np.asarray(mask_utils.decode(rle), np.uint8)


def test_letterbox_geometry_matches_ultralytics() -> None:
    g = letterbox_geometry(480, 640, 320, 320)
    assert (g.scale, g.width, g.height, g.left, g.top) == (0.5, 320, 240, 0, 40)
    g = letterbox_geometry(1080, 810, 320, 320)  # bus.jpg: 240x320, 40 px each side
    assert (g.width, g.height, g.left, g.top) == (240, 320, 40, 0)
    g = letterbox_geometry(300, 451, 320, 320)  # odd padding: Ultralytics rounds dh-0.1
    assert g.width == 320 and g.height == 213 and g.top == 53


def test_letterbox_tensor() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    blob, geo = letterbox(frame, (320, 320), 114, 1 / 255)
    assert blob.shape == (1, 3, 320, 320) and blob.dtype == np.float32
    assert blob[0, :, 0, 0] == pytest.approx([114 / 255] * 3)  # padding row
    assert blob[0, :, 160, 160] == pytest.approx([1.0, 0.0, 0.0])  # RGB order
    assert geo.top == 40 and blob[0, 0, 40:280, :].min() == pytest.approx(1.0)


def test_single_pixel_is_its_unit_square() -> None:
    m = np.zeros((5, 5), np.uint8)
    m[2, 3] = 1
    polys = mask_to_polygons(m, (10, 20))
    assert len(polys) == 1
    pts = sorted(zip(polys[0][0::2], polys[0][1::2], strict=True))
    assert pts == [(13, 22), (13, 23), (14, 22), (14, 23)]
    assert corner_grid(m).shape == (6, 6)


def test_polygons_rasterise_back_to_the_mask() -> None:
    m = np.zeros((120, 160), np.uint8)
    cv2.circle(m, (60, 60), 30, 1, -1)
    cv2.rectangle(m, (100, 10), (140, 30), 1, -1)
    cv2.ellipse(m, (120, 90), (25, 10), 30, 0, 360, 1, -1)
    polys = mask_to_polygons(m, epsilon=1.0)
    assert len(polys) == 3
    back = _raster(polys, 120, 160)
    iou = (back & m).sum() / (back | m).sum()
    assert iou > 0.97
    assert polygons_area(polys) == pytest.approx(m.sum(), rel=0.03)
    # without simplification only the half-pixels cut by diagonal steps differ
    exact = _raster(mask_to_polygons(m, epsilon=0.0), 120, 160)
    assert (exact & m).sum() / (exact | m).sum() > 0.98
    # tracing through pixel centres instead would lose about half a pixel all round
    assert exact.sum() >= m.sum() * 0.99


def test_specks_dropped_but_largest_kept() -> None:
    m = np.zeros((50, 50), np.uint8)
    m[10:30, 10:30] = 1
    m[40, 40] = 1  # speck
    polys = mask_to_polygons(m)
    assert len(polys) == 1 and polygons_area(polys) == pytest.approx(400)
    tiny = np.zeros((50, 50), np.uint8)
    tiny[5, 5] = 1
    assert len(mask_to_polygons(tiny)) == 1  # a tiny object keeps its only polygon
    assert mask_to_polygons(np.zeros((4, 4), np.uint8)) == []
    assert mask_to_polygons(np.zeros((0, 0), np.uint8)) == []


def test_holes_are_not_reported() -> None:
    m = np.zeros((40, 40), np.uint8)
    m[5:35, 5:35] = 1
    m[15:25, 15:25] = 0
    polys = mask_to_polygons(m)
    assert len(polys) == 1 and polygons_area(polys) == pytest.approx(900)
