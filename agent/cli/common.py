"""What the CLI's subcommands share: the repository root, logging, settings, printing payloads."""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

from agent.mqtt import codec
from agent.mqtt.client import SimpleClient
from agent.mqtt.topics import Topics
from agent.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def settings_of(args: argparse.Namespace, **overrides: Any) -> Settings:
    config: Path | None = args.config
    return load_settings(config, **overrides)


def topics_of(settings: Settings, dev: str) -> Topics:
    return Topics(settings.mqtt.prefix, dev, settings.device.fleet)


def client(settings: Settings, role: str) -> SimpleClient:
    return SimpleClient(settings.mqtt, f"maix-{role}-{uuid.uuid4().hex[:8]}")


def decode_for_print(payload: bytes, content_type: str | None) -> Any:
    """A payload as something JSON can print: a JPEG's size, decoded JSON/msgpack, else text."""
    if payload[:2] == b"\xff\xd8":
        return {"jpeg_bytes": len(payload)}
    try:
        return codec.decode(payload, codec.sniff(payload, content_type), max_bytes=1 << 26)
    except codec.DecodeError:
        return payload.decode("utf-8", errors="replace")
