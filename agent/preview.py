"""The live view: JPEG frames on ``maix/{dev}/preview`` while a lease is held, and the opt-in
annotated camera for Home Assistant.

The vision worker hands every frame whose results it has just published to :meth:`Preview.offer`
(a reference kept only while someone wants frames: no copy, no work without a lease). The
preview's own thread wakes at ``preview.fps``, scales the newest offered frame to
``preview.width``, encodes it and publishes one msgpack map per frame::

    {v: 1, dev, seq, ts, w, h, jpeg}

``seq``/``ts`` are those of the frame the results on ``result/*`` carry, ``w``/``h`` the frame's
size (result boxes are in those pixels; the JPEG may be smaller). Without a lease nothing is
encoded and nothing is published. ``preview/start {seconds}`` takes or extends the lease (every
client renews its own; the longest wins), ``preview/stop`` ends it.

The Home Assistant camera (``homeassistant.camera``) gets the frame with the latest results drawn,
as plain JPEG bytes (what HA's MQTT camera reads) every ``homeassistant.camera_interval`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from agent.mqtt import codec
from agent.sources.base import Frame
from agent.vision.draw import draw_results

if TYPE_CHECKING:
    from agent.settings import PreviewSettings

log = logging.getLogger(__name__)

Publish = Callable[..., None]  # (topic, payload, qos, retain)


def scaled(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` scaled down to ``width`` (never up), aspect kept."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


class Preview:
    def __init__(
        self,
        cfg: PreviewSettings,
        publish: Publish,
        *,
        dev: str,
        topic: str,
        ha_topic: str | None = None,
        ha_interval: float = 10.0,
        last_results: Callable[[], dict[str, dict[str, Any]]] = dict,
    ) -> None:
        self.cfg = cfg
        self.publish = publish
        self.dev = dev
        self.topic = topic
        self.ha_topic = ha_topic
        self.ha_interval = ha_interval
        self.last_results = last_results
        self.sent = 0
        self.ha_sent = 0
        self.leases = 0
        self._until = 0.0  # monotonic end of the lease
        self._frame: Frame | None = None
        self._cond = threading.Condition()

    # -- lease (command worker) ---------------------------------------------------------------
    @property
    def active(self) -> bool:
        return time.monotonic() < self._until

    def start(self, seconds: float) -> dict[str, Any]:
        seconds = min(seconds, self.cfg.max_lease)
        with self._cond:
            self._until = max(self._until, time.monotonic() + seconds)
            remaining = self._until - time.monotonic()
            self.leases += 1
            self._cond.notify_all()
        return {
            "seconds": round(remaining, 2),
            "fps": self.cfg.fps,
            "width": self.cfg.width,
            "topic": self.topic,
        }

    def stop(self) -> dict[str, Any]:
        with self._cond:
            was = self.active
            self._until = 0.0
            self._frame = None
        return {"stopped": was}

    def state(self) -> dict[str, Any]:
        return {"active": self.active, "sent": self.sent, "leases": self.leases, "ha_sent": self.ha_sent}

    # -- frames (vision worker) ---------------------------------------------------------------
    def offer(self, frame: Frame) -> None:
        """A frame whose results have just been published; kept (by reference) only when wanted."""
        if self.ha_topic is not None or time.monotonic() < self._until:
            self._frame = frame

    # -- the preview thread ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self._loop, args=(stop,), name="preview", daemon=True)
        t.start()
        return t

    def _loop(self, stop: threading.Event) -> None:
        period = 1.0 / self.cfg.fps
        next_preview = 0.0
        next_ha = time.monotonic() + min(2.0, self.ha_interval)
        last_seq = -1
        while not stop.is_set():
            now = time.monotonic()
            leased = now < self._until
            if not leased and self.ha_topic is None:
                with self._cond:
                    self._frame = None  # nothing held once the lease has run out
                    self._cond.wait(0.5)
                continue
            frame = self._frame
            try:
                if leased and now >= next_preview and frame is not None and frame.seq != last_seq:
                    self._send_preview(frame)
                    last_seq, next_preview = frame.seq, now + period
                if self.ha_topic is not None and frame is not None and now >= next_ha:
                    self._send_ha(frame)
                    next_ha = now + self.ha_interval
            except Exception:  # one bad frame must not end the live view
                log.exception("preview of frame %d failed", frame.seq if frame else -1)
            now = time.monotonic()
            waits = [next_ha - now] if self.ha_topic is not None else []
            if leased:  # the next frame is due, or a new frame is awaited
                waits.append(next_preview - now if now < next_preview else 0.01)
            stop.wait(min(1.0, max(0.005, min(waits))))  # waits is never empty here

    def _send_preview(self, frame: Frame) -> None:
        assert frame.image is not None
        h, w = frame.image.shape[:2]
        data = jpeg(scaled(frame.image, self.cfg.width), self.cfg.quality)
        msg = {"v": 1, "dev": self.dev, "seq": frame.seq, "ts": frame.ts, "w": w, "h": h, "jpeg": data}
        self.publish(self.topic, codec.encode(msg, "msgpack"), 0, False)
        self.sent += 1

    def _send_ha(self, frame: Frame) -> None:
        assert frame.image is not None and self.ha_topic is not None
        drawn = draw_results(frame.image, dict(self.last_results()))
        self.publish(self.ha_topic, jpeg(scaled(drawn, self.cfg.width), self.cfg.quality), 0, False)
        self.ha_sent += 1
