"""The console's own checks, without a browser: exposure, what the page may ask, the fleet list."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.console.fleet import Fleet
from agent.console.requests import Cmd, Refused, check_command, parse
from agent.console.server import check_exposure, host_name, is_loopback, ref_of
from agent.errors import ConfigError
from agent.settings import load_settings


def test_a_console_off_loopback_needs_a_token() -> None:
    check_exposure(load_settings(None))  # 127.0.0.1 by default
    with pytest.raises(ConfigError, match=r"console\.token"):
        check_exposure(load_settings(None, console={"host": "0.0.0.0"}))
    check_exposure(load_settings(None, console={"host": "0.0.0.0", "token": "long-enough-secret"}))
    with pytest.raises(ConfigError, match="at least 8"):
        load_settings(None, console={"token": "short"})
    assert is_loopback("127.0.0.2") and is_loopback("localhost") and not is_loopback("evil.example")
    assert [host_name(h) for h in ("[::1]:8321", "localhost:80", "evil.example", "[fe80::1]")] == [
        "::1",
        "localhost",
        "evil.example",
        "fe80::1",
    ]


def _cmd(command: str, body: dict[str, Any], **extra: object) -> Cmd:
    msg = parse(json.dumps({"type": "cmd", "ref": 1, "dev": "cam1", "command": command, "body": body, **extra}))
    assert isinstance(msg, Cmd)
    return msg


def test_only_offered_and_valid_commands_pass() -> None:
    assert check_command(_cmd("thresholds/set", {"face": {"match": 0.8}}), None) == {"face": {"match": 0.8}}
    assert check_command(_cmd("face/rename", {"label": " Ann ", "to": "Anna"}), None) == {"label": "Ann", "to": "Anna"}
    jpeg = b"\xff\xd8fake"
    body = check_command(_cmd("track/start", {"box": [1, 2, 3, 4]}), jpeg)
    assert body == {"box": [1.0, 2.0, 3.0, 4.0], "image": jpeg}
    refused = [
        (_cmd("bank/import", {}), None, "not offered"),
        (_cmd("preview/start", {"seconds": 5}), None, "not offered"),
        (_cmd("face/enrol", {"label": "x", "image": "AAAA"}), None, "cannot send images"),
        (_cmd("track/start", {"box": [1, 2, 3, 4]}), None, "grab it first"),
        (_cmd("face/rename", {"label": "a"}), None, "to"),
        (_cmd("pipelines/set", {"faces": "maybe"}), None, "faces"),
        (_cmd("face/sample", {}), None, "sample"),
        (_cmd("face/sample", {"sample": "../etc"}), None, "sample"),
    ]
    for cmd, image, why in refused:
        with pytest.raises(Refused, match=why):
            check_command(cmd, image)
    for bad in (
        "not json",
        '{"type": "cmd", "ref": 1, "dev": "a/b", "command": "system/ping"}',
        '{"type": "cmd", "ref": -1, "dev": "a", "command": "system/ping"}',
        '{"type": "shell", "ref": 1}',
        '{"type": "watch", "dev": "cam1", "extra": 1}',
    ):
        with pytest.raises(Refused):
            parse(bad)
    assert ref_of('{"ref": 7, "dev": "../x"}') == 7 and ref_of("nope") is None and ref_of('{"ref": true}') is None


def test_fleet_tracks_availability_and_state() -> None:
    fleet = Fleet("maix")
    assert fleet.device_of("maix/fleet/default/cmd/x") is None and fleet.device_of("other/cam1/state") is None
    dev, rest = fleet.device_of("maix/cam1/availability") or ("", "")
    assert fleet.update(dev, rest, b"online") is not None
    assert fleet.update("cam1", "state", b'{"fps": 4.5, "pipelines": {"faces": true}}') is not None
    assert fleet.update("cam1", "state", b"[1]") is None and fleet.update("cam1", "state", b"\xff") is None
    (cam,) = fleet.list()
    assert cam["online"] and cam["fps"] == 4.5 and cam["pipelines"] == {"faces": True}
    fleet.update("cam1", "availability", b"offline")
    assert not fleet.list()[0]["online"]


def test_hide_boxes_greys_out_the_faces_not_meant() -> None:
    import cv2
    import numpy as np

    from agent.console.bridge import hide_boxes

    img = np.full((60, 80, 3), 255, np.uint8)
    out = cv2.imdecode(
        np.frombuffer(hide_boxes(cv2.imencode(".png", img)[1].tobytes(), [[10, 10, 20, 20]]), np.uint8), 1
    )
    assert (
        out is not None and abs(int(out[20, 20, 0]) - 127) < 6 and out[50, 70, 0] > 245
    )  # inside greyed, outside untouched
    with pytest.raises(ValueError):
        hide_boxes(b"not an image", [[0, 0, 1, 1]])
