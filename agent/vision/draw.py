"""Draw results onto a frame for snapshots: face boxes and names, masks, the track, the class."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

COLOURS = [(66, 135, 245), (245, 66, 93), (66, 245, 129), (245, 212, 66), (190, 66, 245), (66, 230, 245)]


def _label(img: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    y = max(y, th + 4)
    cv2.rectangle(img, (x, y - th - 4), (x + tw + 4, y), colour, -1)
    cv2.putText(img, text, (x + 2, y - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


def draw_results(frame: np.ndarray, results: dict[str, dict[str, Any]]) -> np.ndarray:
    """A copy of ``frame`` with every result kind drawn on it."""
    img = frame.copy()
    overlay = img.copy()
    for i, obj in enumerate(results.get("segments", {}).get("objects", [])):
        colour = COLOURS[obj.get("class_id", i) % len(COLOURS)]
        for poly in obj.get("polygons", []):
            pts = np.asarray(poly, np.int32).reshape(-1, 2)
            if len(pts) >= 3:
                cv2.fillPoly(overlay, [pts], colour)
        x, y, w, h = (round(v) for v in obj["box"])
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, 2)
        _label(img, f"{obj.get('label', '?')} {obj.get('score', 0):.2f}", x, y, colour)
    img = cv2.addWeighted(overlay, 0.35, img, 0.65, 0)
    for face in results.get("faces", {}).get("faces", []):
        x, y, w, h = (round(v) for v in face["box"])
        colour = (0, 200, 0) if face.get("label") != "unknown" else (0, 0, 230)
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, 2)
        for px, py in face.get("points", []):
            cv2.circle(img, (int(px), int(py)), 2, colour, -1)
        _label(img, f"{face.get('label')} {face.get('similarity', 0):.2f}", x, y, colour)
    track = results.get("track")
    if track and track.get("box"):
        x, y, w, h = (round(v) for v in track["box"])
        colour = (255, 200, 0) if track.get("state") == "tracking" else (128, 128, 128)
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, 2)
        _label(img, f"track {track.get('state')} {track.get('score', 0):.2f}", x, y + h + 18, colour)
    cls = results.get("classify")
    if cls and cls.get("label") is not None:
        _label(img, f"class: {cls['label']} ({cls.get('distance') or 0:.1f})", 4, 20, (255, 255, 255))
    return img


def encode_jpeg(img: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
