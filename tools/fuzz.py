"""Fuzz a running agent over a real mosquitto: every command topic, frame/in and the fleet bank topics.

Inputs come from hypothesis strategies built from each command's pydantic request model (its JSON
schema: valid-looking requests, then one field dropped, added, retyped or pushed to an extreme),
from real and corrupted images (truncated, bit-flipped, headers claiming gigapixels, odd shapes)
and from raw bytes. The invariants, checked after every input:

- every command gets a reply (through the MQTT 5 response topic, matched by correlation data);
- an error reply leaves the banks and the classifier samples byte-for-byte unchanged;
- no handler raised an unexpected exception (``internal``), the vision worker never failed on a
  frame, and bank entries that cannot be genuine (a fleet key is set) are all refused.

The CI runs a short, derandomised session (tests/integration/test_fuzz_models.py); a longer one:

    .venv/bin/python tools/fuzz.py --minutes 10          # prints the input count and the findings
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.app import Agent  # noqa: E402
from agent.commands.base import Command  # noqa: E402
from agent.homeassistant.discovery import BUTTONS, PIPELINE_NAMES, THRESHOLD_NUMBERS  # noqa: E402
from agent.mqtt.client import SimpleClient  # noqa: E402
from agent.mqtt.settings import MqttSettings  # noqa: E402
from agent.mqtt.topics import Message  # noqa: E402
from agent.pipelines.classifier import ClassifierService  # noqa: E402
from agent.pipelines.faces import FaceThresholds  # noqa: E402
from agent.pipelines.registry import all_commands  # noqa: E402
from agent.settings import Thresholds  # noqa: E402

FLEET_KEY = "fuzz-fleet-key"


# -- inputs -----------------------------------------------------------------------------------
def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def _claiming(kind: str, w: int, h: int) -> bytes:
    """A header that claims ``w`` x ``h`` pixels, with (almost) nothing behind it."""
    import struct
    import zlib

    if kind == "png":

        def chunk(tag: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 32))
            + chunk(b"IEND", b"")
        )
    sof = struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8\xff\xc0" + sof + b"\xff\xd9"


@dataclass
class Assets:
    """Images to fuzz with: small real ones (cheap to run models on) and odd ones."""

    valid: list[bytes]
    odd: list[bytes]

    @classmethod
    def load(cls, eval_dir: Path) -> Assets:
        bus = cv2.imread(str(eval_dir / "images" / "bus.jpg"))
        face = cv2.imread(str(eval_dir / "faces" / "obama.jpg"))
        assert bus is not None and face is not None, f"eval images missing under {eval_dir}"
        face = cv2.resize(face, (160, int(160 * face.shape[0] / face.shape[1])))
        valid = [_jpeg(cv2.resize(bus, (96, 72))), _jpeg(face), _png(cv2.resize(bus, (48, 36)))]
        odd = [
            _png(np.zeros((1, 1, 3), np.uint8)),  # one pixel
            _png(np.full((1, 640, 3), 255, np.uint8)),  # one row
            _png(np.zeros((480, 2, 3), np.uint8)),  # two columns
            _png(cv2.cvtColor(cv2.resize(bus, (40, 30)), cv2.COLOR_BGR2GRAY)),  # grey
            _png(np.zeros((20, 20, 4), np.uint8)),  # with alpha
            _png((np.random.default_rng(1).random((24, 32, 3)) * 65535).astype(np.uint16)),  # 16 bit
            _claiming("png", 100_000, 100_000),
            _claiming("jpeg", 65_535, 65_535),
            _claiming("png", 0, 10),
            _claiming("jpeg", 1, 1),  # a header and no scan
        ]
        return cls(valid, odd)

    def images(self) -> st.SearchStrategy[bytes]:
        return st.one_of(
            st.sampled_from(self.valid),
            st.sampled_from(self.odd),
            st.builds(_truncate, st.sampled_from(self.valid), st.floats(0, 1)),
            st.builds(_flip, st.sampled_from(self.valid), st.lists(st.integers(0, 1 << 30), min_size=1, max_size=8)),
            st.binary(max_size=64),
        )


def _truncate(data: bytes, frac: float) -> bytes:
    return data[: int(len(data) * frac)]


def _flip(data: bytes, positions: list[int]) -> bytes:
    buf = bytearray(data)
    for p in positions:
        buf[p % len(buf)] ^= 1 << (p % 8)
    return bytes(buf)


ANY_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=16)
    | st.binary(max_size=16)
)
ANY = st.recursive(
    ANY_SCALAR, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8
)
EXTREME = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x07b",
        "x" * 129,
        "x" * 10_000,
        "名前🙂",
        -1,
        0,
        2**63 - 1,
        -(2**63),
        1e308,
        -1e308,
        math.nan,
        math.inf,
        -math.inf,
        True,
        [],
        {},
        [1, 2, 3],
        [0, 0, 0, 0],
        [-5, -5, 10, 10],
        [1e9, 1e9, 1, 1],
    ]
)
LABELS = st.sampled_from(["obama", "bus", "a", "id_1", "Zoë", "x" * 128]) | st.text(min_size=1, max_size=20)
BOXES = st.lists(st.integers(-10, 200), min_size=4, max_size=4) | st.lists(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e4, max_value=1e4), min_size=4, max_size=4
)
BINARY = "__binary__"  # placeholder: filled with image bytes (or base64 text for JSON)


def from_schema(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """A strategy of values that follow a (pydantic) JSON schema."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name)
    if name == "label" or name == "to":
        return LABELS
    if name == "box":
        return BOXES
    if name == "pipeline":
        return st.sampled_from(["classifier", "faces", "segment", "track", "classify", "face"]) | st.text(max_size=8)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, defs, name) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        if not props:
            return (
                st.dictionaries(st.text(max_size=8), ANY, max_size=3)
                if schema.get("additionalProperties")
                else st.just({})
            )
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, defs, k) for k, v in props.items() if k in required},
            optional={k: from_schema(v, defs, k) for k, v in props.items() if k not in required},
        )
    if kind == "string":
        if schema.get("format") == "binary":
            return st.just(BINARY)
        lo, hi = schema.get("minLength", 0), min(schema.get("maxLength", 32), 32)
        return st.text(min_size=lo, max_size=max(lo, hi))
    if kind in ("number", "integer"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        if kind == "integer":
            return st.integers(lo, hi)
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        lo, hi = schema.get("minItems", 0), schema.get("maxItems", 4)
        return st.lists(from_schema(schema.get("items", {}), defs), min_size=lo, max_size=hi)
    return ANY


def request_schema(cmd: Command) -> tuple[dict[str, Any], dict[str, Any]]:
    # thresholds/set takes free maps; the settings model says what belongs in them.
    model = Thresholds if cmd.key == ("thresholds", "set") else cmd.request
    schema = model.model_json_schema()
    return schema, schema.get("$defs", {})


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A request that follows the schema, or one deliberately broken in one place."""
    body = dict(draw(base))
    how = draw(st.sampled_from(["none", "none", "drop", "add", "retype", "extreme", "nest", "not_a_map"]))
    keys = sorted(body)
    if how == "drop" and keys:
        body.pop(draw(st.sampled_from(keys)))
    elif how == "add":
        body[draw(st.text(min_size=1, max_size=8))] = draw(ANY)
    elif how == "retype" and keys:
        body[draw(st.sampled_from(keys))] = draw(ANY)
    elif how == "extreme" and keys:
        body[draw(st.sampled_from(keys))] = draw(EXTREME)
    elif how == "nest" and keys:
        k = draw(st.sampled_from(keys))
        body[k] = {k: body[k]}
    elif how == "not_a_map":
        return draw(st.sampled_from([[body], list(body), "body", 7, None]))
    if draw(st.booleans()):
        body["id"] = draw(st.text(max_size=12) | st.integers(-(2**31), 2**31) | EXTREME)
    return body


def _fill_binary(obj: Any, images: list[bytes], json_mode: bool, bad_b64: bool) -> Any:
    if obj == BINARY and isinstance(obj, str):
        data = images.pop() if images else b""
        if json_mode:
            return "not base64!" if bad_b64 else base64.b64encode(data).decode()
        return data
    if isinstance(obj, dict):
        return {k: _fill_binary(v, images, json_mode, bad_b64) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill_binary(v, images, json_mode, bad_b64) for v in obj]
    return obj


def _to_json_safe(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    if isinstance(obj, dict):
        return {str(k): _to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_json_safe(v) for v in obj]
    return obj


@st.composite
def command_payloads(draw: st.DrawFn, cmd: Command, assets: Assets) -> bytes:
    schema, defs = request_schema(cmd)
    body = draw(mutated(from_schema(schema, defs)))
    json_mode = draw(st.booleans())
    images = draw(st.lists(assets.images(), min_size=2, max_size=2))
    body = _fill_binary(body, images, json_mode, draw(st.integers(0, 9)) == 0)
    if json_mode:
        return json.dumps(_to_json_safe(body), allow_nan=True).encode()
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def _name(cmd: Command) -> str:
    return f"{cmd.family}/{cmd.name}" if cmd.name else cmd.family


def _keyed(name: str) -> Callable[[bytes], tuple[str, bytes]]:
    return lambda payload: (name, payload)


def command_inputs(assets: Assets) -> st.SearchStrategy[tuple[str, bytes]]:
    """(``family/command``, payload) over every command, plus raw garbage now and then."""
    per_command = [command_payloads(c, assets).map(_keyed(_name(c))) for c in all_commands()]
    names = sorted(_name(c) for c in all_commands())
    raw = st.tuples(st.sampled_from(names), st.binary(max_size=200))
    return st.one_of(*per_command, raw)


def bank_inputs() -> st.SearchStrategy[tuple[str, str, bytes]]:
    """(bank, entry id, payload) on the fleet bank topics: raw bytes and entry-shaped maps."""
    fields = st.fixed_dictionaries(
        {},
        optional={
            "v": st.integers(-1, 3) | ANY,
            "id": st.text(max_size=70) | ANY,
            "bank": st.sampled_from(["faces", "classes", "other"]) | ANY,
            "label": LABELS | ANY,
            "vec": st.binary(max_size=1024) | ANY,
            "dim": st.sampled_from([0, 1, 128, 1280, 65536]) | ANY,
            "hlc": st.lists(st.integers(0, 2**63 - 1) | st.text(max_size=8), max_size=4) | ANY,
            "origin": st.text(max_size=10) | ANY,
            "deleted": st.booleans() | ANY,
            "sig": st.binary(min_size=32, max_size=32) | ANY,
        },
    )
    payload = st.one_of(
        st.binary(max_size=300), fields.map(lambda d: msgpack.packb(d, use_bin_type=True)), st.just(b"")
    )
    entry = st.text("abcdef0123456789", min_size=1, max_size=40)
    return st.tuples(st.sampled_from(["faces", "classes"]), entry, payload)


def ha_inputs() -> st.SearchStrategy[tuple[str, bytes]]:
    """(path under ``ha/set/``, payload) for Home Assistant's control topics; ``""`` = the birth topic."""
    known = [f"threshold/{k}" for k in THRESHOLD_NUMBERS] + [f"pipeline/{k}" for k in PIPELINE_NAMES]
    known += [f"button/{k}" for k in BUTTONS]
    paths = st.sampled_from(["", *known]) | st.text("abcdefghijklmnopqrstuvwxyz_/", max_size=24)
    values = st.sampled_from([b"ON", b"OFF", b"on", b"online", b"PRESS", b"0.5", b"-1", b"1e999", b"nan", b""])
    payloads = values | st.floats().map(lambda f: repr(f).encode()) | st.binary(max_size=40)
    return st.tuples(paths, payloads)


def _taken(agent: Agent) -> int:
    """Frames the worker is done with: processed, refused, or replaced by a newer one (in the
    slot, or in the worker's own decode hand-over when it has one)."""
    w = agent.worker
    return w.processed + w.bad_frames + agent.slot.frames_dropped + int(getattr(w, "dropped", 0))


# -- the driver -------------------------------------------------------------------------------
@dataclass
class Findings:
    inputs: Counter[str] = field(default_factory=Counter)
    replies: Counter[str] = field(default_factory=Counter)
    slow: list[tuple[float, str]] = field(default_factory=list)  # over SLOW_S seconds (not failures)


SLOW_S = 5.0


class Fuzzer:
    """Sends inputs to one agent and checks the invariants after each."""

    def __init__(self, agent: Agent, port: int, reply_timeout: float = 300.0) -> None:
        self.agent = agent
        self.prefix = agent.settings.mqtt.prefix
        self.dev = agent.device_id
        self.fleet = agent.settings.device.fleet
        self.inbox = f"{self.prefix}/fuzz-inbox/{uuid.uuid4().hex[:8]}"
        self.reply_timeout = reply_timeout
        self.stop_at: float | None = None  # past it, inputs are skipped (ends a round early)
        self.found = Findings()
        self.internal: list[BaseException] = []
        agent.router.on_internal_error.append(self.internal.append)
        self.client = SimpleClient(
            MqttSettings(host="127.0.0.1", port=port, protocol="5"), f"fuzz-{uuid.uuid4().hex[:6]}"
        )
        self.client.subscribe(self.inbox)
        self.client.connect()
        self._baseline = self.snapshot()
        self._frames0 = agent.slot.frames_in + agent.frames_rejected

    def close(self) -> None:
        self.client.close()

    def snapshot(self) -> tuple[bytes, ...]:
        """What invalid input must never change: the bank files and the classifier samples."""
        paths = [
            self.agent.services.banks["faces"].path,
            self.agent.services.banks["classes"].path,
            self.agent.services.get(ClassifierService).samples_path,
        ]
        return tuple(p.read_bytes() if p.exists() else b"" for p in paths)

    def _wait_reply(self, corr: bytes) -> Message:
        for msg in self.client.messages(self.reply_timeout):
            if msg.correlation_data == corr:
                return msg
        raise AssertionError(f"no reply within {self.reply_timeout}s: the agent stopped answering")

    def _over(self) -> bool:
        return self.stop_at is not None and time.monotonic() > self.stop_at

    def _slow(self, what: str, seconds: float) -> None:
        face = self.agent.controls.threshold(FaceThresholds)
        self.found.slow.append((seconds, f"{what}: {seconds:.1f}s (face.detect {face.detect:.3g}, nms {face.nms:.3g})"))

    def command(self, name: str, payload: bytes, *, force: bool = False) -> dict[str, Any]:
        if self._over() and not force:
            return {"ok": True, "skipped": True}
        corr = uuid.uuid4().bytes
        self.found.inputs["command"] += 1
        t0 = time.monotonic()
        self.client.publish(
            f"{self.prefix}/{self.dev}/cmd/{name}", payload, response_topic=self.inbox, correlation=corr
        )
        msg = self._wait_reply(corr)
        if time.monotonic() - t0 > SLOW_S:
            self._slow(f"command {name} ({len(payload)} bytes)", time.monotonic() - t0)
        reply = json.loads(msg.payload) if msg.payload[:1] == b"{" else msgpack.unpackb(msg.payload, raw=False)
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), f"malformed reply {reply!r}"
        code = "ok" if reply["ok"] else reply["error"]["code"]
        self.found.replies[code] += 1
        after = self.snapshot()
        if not reply["ok"] and after != self._baseline:
            raise AssertionError(f"{name}: the error reply {reply['error']} changed the banks")
        self._baseline = after
        if code == "internal" or self.internal:
            raise AssertionError(f"{name}: internal error {reply} {self.internal!r}")
        return reply

    def frame(self, payload: bytes, timeout: float = 300.0) -> None:
        """Push one frame and wait until the worker has taken it (processed or refused), so every
        frame meets the pipelines instead of being replaced in the latest-frame slot. The wait
        includes the previous frame's processing: a slow one shows up here."""
        if self._over():
            return
        a = self.agent
        t0 = time.monotonic()
        self.found.inputs["frame"] += 1
        errors = self._failures()
        self.client.publish(f"{self.prefix}/{self.dev}/frame/in", payload, qos=1)
        want = self._frames0 + self.found.inputs["frame"]
        deadline = time.monotonic() + timeout
        while not (a.slot.frames_in + a.frames_rejected >= want and a.slot.frames_in <= _taken(a)):
            if time.monotonic() > deadline:
                raise AssertionError(f"frame of {len(payload)} bytes never taken by the worker")
            time.sleep(0.002)
        if time.monotonic() - t0 > SLOW_S:
            self._slow(f"frame before #{self.found.inputs['frame']}", time.monotonic() - t0)
        if self._failures() != errors:
            raise AssertionError(
                f"the vision worker or a pipeline failed on a frame ({len(payload)} bytes, {payload[:16]!r})"
            )

    def _failures(self) -> int:
        """Frames the vision worker failed on plus pipeline runs that raised (both logged)."""
        return int(self.agent.worker.errors + self.agent.engine.errors)

    def bank(self, bank: str, entry: str, payload: bytes) -> None:
        if self._over():
            return
        self.found.inputs["bank"] += 1
        model = (self.agent.services.banks["faces"] if bank == "faces" else self.agent.services.banks["classes"]).model
        self.client.publish(f"{self.prefix}/fleet/{self.fleet}/bank/{bank}/{model}/{entry}", payload, qos=1)

    def ha(self, path: str, payload: bytes) -> None:
        """A write on a Home Assistant control topic (or, with an empty path, its birth topic)."""
        if self._over():
            return
        self.found.inputs["homeassistant"] += 1
        ha = self.agent.settings.homeassistant
        topic = f"{ha.prefix}/status" if not path else f"{self.prefix}/{self.dev}/ha/set/{path}"
        self.client.publish(topic, payload, qos=1)

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until every frame and bank message sent so far is accounted for, then check."""
        a = self.agent
        # A barrier first: the broker hands the agent one publisher's messages in order, so once
        # this ping is answered every frame and bank message sent before it has arrived.
        if not self.command("system/ping", b"{}", force=True)["ok"]:
            raise AssertionError("ping failed")
        deadline = time.monotonic() + timeout

        def frames_done() -> bool:
            return a.slot.frames_in <= _taken(a)

        def bank_done() -> bool:
            state = a.fleet_sync.state()
            sync = state["bank_sync"]
            done = state["bank_rejected"] + sync.get("cleared", 0) + sync.get("dropped", 0) + sync.get("applied", 0)
            return bool(done >= self.found.inputs["bank"])

        while not (frames_done() and bank_done()):
            if time.monotonic() > deadline:
                raise AssertionError("frames or bank messages were never accounted for")
            time.sleep(0.05)
        if a.worker.errors or a.engine.errors:
            raise AssertionError(
                f"the vision worker failed on {a.worker.errors} frame(s), the pipelines {a.engine.errors} "
                "time(s): see the log"
            )
        applied = a.fleet_sync.state()["bank_sync"].get("applied", 0)
        if applied:
            raise AssertionError(f"{applied} forged bank entries were applied despite the fleet key")
        if self.snapshot() != self._baseline:
            raise AssertionError("frames or bank messages changed the banks")

    def run_batch(self, assets: Assets, examples: int, *, derandomize: bool) -> None:
        """One round of each input family, ``examples`` inputs per family."""
        common: dict[str, Any] = {
            "max_examples": examples,
            "deadline": None,
            "suppress_health_check": list(HealthCheck),
            "database": None,
            "derandomize": derandomize,
            "phases": [Phase.explicit, Phase.generate],
        }

        @settings(**common)
        @given(command_inputs(assets))
        def commands(item: tuple[str, bytes]) -> None:
            self.command(*item)

        @settings(**common)
        @given(assets.images())
        def frames(payload: bytes) -> None:
            self.frame(payload)

        @settings(**common)
        @given(bank_inputs())
        def banks(item: tuple[str, str, bytes]) -> None:
            self.bank(*item)

        @settings(**common)
        @given(ha_inputs())
        def homeassistant(item: tuple[str, bytes]) -> None:
            self.ha(*item)

        families = [commands, frames, banks]
        if self.agent.settings.homeassistant.enabled:
            families.append(homeassistant)
        # Each round starts from the configured thresholds and pipelines: a fuzzed thresholds/set
        # (face.detect ~ 0, say) must not slow every later round down.
        self.agent.controls.set_thresholds(self.agent.settings.thresholds.model_dump())
        self.agent.controls.set_pipelines(self.agent.settings.pipelines.model_dump())
        for family in families:
            family()
        self.settle()


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to fuzz")
    ap.add_argument("--batch", type=int, default=200, help="inputs per family per round")
    ap.add_argument("--models-dir", type=Path, default=Path(os.environ.get("MAIX_AGENT_MODELS__DIR", REPO / "models")))
    ap.add_argument(
        "--eval-dir", type=Path, default=Path(os.environ.get("MAIX_AGENT_EVAL_DIR", REPO.parent / "shared" / "eval"))
    )
    ap.add_argument("--log", type=Path, default=None, help="agent log file (default: a temp file)")
    args = ap.parse_args(argv)

    import logging
    import tempfile

    from agent.mqtt.embedded import EmbeddedBroker
    from agent.settings import load_settings

    work = Path(tempfile.mkdtemp(prefix="maix-fuzz-"))
    log_path = args.log or work / "agent.log"
    logging.basicConfig(
        filename=log_path, level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    broker = EmbeddedBroker().start()
    agent = Agent(
        load_settings(
            None,
            mqtt={"host": "127.0.0.1", "port": broker.port, "prefix": "fuzz"},
            device={"id": "fz", "fleet": "fz"},
            storage={"dir": work / "state"},
            models={"dir": args.models_dir},
            source={"uri": "mqtt"},
            pipelines={"faces": True, "classifier": True, "segment": True, "track": True},
            fleet={"key": FLEET_KEY},
            homeassistant={"enabled": True},
            limits={"expensive_rate": 0},
        )
    )
    agent.start(connect_timeout=15)
    assets = Assets.load(args.eval_dir)
    fuzzer = Fuzzer(agent, broker.port)
    t0 = time.monotonic()
    deadline = t0 + args.minutes * 60
    fuzzer.stop_at = deadline
    rounds, rss0, status = 0, _rss_mb(), 0
    try:
        fuzzer.frame(assets.valid[0])  # a latest frame, so image-less commands have one to use
        fuzzer.settle()
        while time.monotonic() < deadline:
            fuzzer.run_batch(assets, args.batch, derandomize=False)
            rounds += 1
            f = fuzzer.found
            print(
                f"[{(time.monotonic() - t0) / 60:5.1f} min] round {rounds}: {sum(f.inputs.values())} inputs "
                f"{dict(f.inputs)} replies {dict(f.replies)} rss {_rss_mb():.0f} MB",
                flush=True,
            )
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    except Exception as exc:  # a finding: report it with the log, fail
        status = 1
        print(f"FINDING: {type(exc).__name__}: {exc}", flush=True)
    finally:
        fuzzer.close()
        agent.stop()
        broker.cleanup()
    f = fuzzer.found
    total = sum(f.inputs.values())
    minutes = (time.monotonic() - t0) / 60
    print(
        json.dumps(
            {
                "minutes": round(minutes, 1),
                "rounds": rounds,
                "inputs": total,
                "by_kind": dict(f.inputs),
                "replies": dict(f.replies),
                "frames_processed": agent.worker.processed,
                "frames_bad": agent.worker.bad_frames,
                "bank_rejects": agent.fleet_sync.state()["bank_rejects"],
                "worker_errors": agent.worker.errors,
                "pipeline_errors": agent.engine.errors,
                "internal_errors": len(fuzzer.internal),
                "slow_inputs": len(f.slow),
                "slowest": [text for _, text in sorted(f.slow, reverse=True)[:10]],
                "rss_mb": [round(rss0), round(_rss_mb())],
                "status": "ok" if status == 0 else "FINDING",
                "log": str(log_path),
            },
            indent=1,
        )
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
