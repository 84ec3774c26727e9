"""CLI: maix-agent run | demo | console | check-config | print-config | models … | cmd | watch | infer."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from agent.errors import AgentError, ConfigError
from agent.settings import Settings, load_settings, masked_dump

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("agent")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(args.config, **overrides)


# -- run / config ---------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from agent.app import Agent

    settings = _settings(args)
    _setup_logging(args.log_level or settings.log_level)
    return Agent(settings).run_forever()


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)  # a ConfigError is printed line by line by main(), exit 1
    from agent.models import load_manifest
    from agent.models.fetch import verify

    manifest = load_manifest(settings.models.manifest)
    wanted = [
        settings.models.features,
        settings.models.face_detector,
        settings.models.face_embedder,
        settings.models.segmenter,
        f"{settings.models.tracker}_backbone",
        f"{settings.models.tracker}_head",
    ]
    problems = 0
    for name in wanted:
        try:
            spec = manifest.get(name)
        except ConfigError as exc:
            print(f"error: models: {exc}", file=sys.stderr)
            problems += 1
            continue
        verdict = verify(spec, settings.models.dir)
        if not verdict.ok:
            print(
                f"warning: models.dir: {verdict.path} is {verdict.status} (run `maix-agent models fetch`)",
                file=sys.stderr,
            )
    if problems:
        return 1
    print("config ok")
    return 0


def cmd_print_config(args: argparse.Namespace) -> int:
    settings = _settings(args)  # a ConfigError is printed line by line by main(), exit 1
    print(json.dumps(masked_dump(settings), indent=2))
    return 0


# -- models -----------------------------------------------------------------------------------
def default_mirror() -> str | None:
    env = os.environ.get("MAIX_AGENT_MODELS_MIRROR")
    if env:
        return env
    for candidate in (Path.cwd().parent / "shared" / "models", REPO.parent / "shared" / "models"):
        if candidate.is_dir():
            return str(candidate)
    return None


def cmd_models(args: argparse.Namespace) -> int:
    from agent.models import load_manifest
    from agent.models.fetch import fetch, verify

    settings = _settings(args)
    manifest = load_manifest(settings.models.manifest)
    models_dir = settings.models.dir
    if args.action == "list":
        for spec in manifest.models.values():
            status = verify(spec, models_dir).status
            print(f"{spec.name:24} {spec.role:17} {spec.file:30} {status:8} {spec.licence}")
        return 0
    if args.action == "verify":
        bad = [v for v in (verify(s, models_dir) for s in manifest.models.values()) if not v.ok]
        for v in bad:
            print(f"{v.status}: {v.path}", file=sys.stderr)
        print(f"{len(manifest.models) - len(bad)}/{len(manifest.models)} models ok in {models_dir}")
        return 1 if bad else 0
    if args.action == "tune":
        return cmd_tune(args, settings, manifest)
    mirror = args.mirror or default_mirror()
    if not mirror:
        print("error: no mirror: pass --from DIR|URL or set MAIX_AGENT_MODELS_MIRROR", file=sys.stderr)
        return 1
    fetch(manifest, mirror, models_dir, args.names or None)
    return 0


def cmd_tune(args: argparse.Namespace, settings: Settings, manifest: Any) -> int:
    """``models tune``: measure every model the config uses on every engine and thread count
    (``--show``: print the cached table only), then print the table and the choice."""
    from agent.errors import ModelError
    from agent.models.tune import TuneCache, choose, default_cache, key, tune
    from agent.vision.runtime import ENGINES

    names = list(manifest.models) if args.all else args.names or settings.models_in_use()
    cache = TuneCache(settings.models.tune_cache or default_cache())
    if args.show:
        tunes = {n: t for n in names if (t := cache.get(n, manifest.get(n).sha256)) is not None}
        if not tunes:
            reason = cache.stale_reason or "no current measurements"
            print(f"nothing tuned for this machine in {cache.path} ({reason}): run `maix-agent models tune`")
            return 1
    else:
        started = time.perf_counter()
        try:
            tunes = tune(manifest, names, settings.models.dir, settings.tune_images(), cache, force=True)
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"tuned {len(tunes)} models in {time.perf_counter() - started:.1f} s; cache {cache.path}")
    setting = settings.models.engine
    forced = {n: setting for n in tunes} if isinstance(setting, str) and setting != "auto" else {}
    if isinstance(setting, dict):
        forced = {n: e for n, e in setting.items() if e != "auto"}
    chosen = choose(tunes, settings.engine_threads(), forced)
    cols = [key(e, t) for e in ENGINES for t in (1, 2)]
    print(f"{'model':24} {'chosen':14} " + " ".join(f"{c:>14}" for c in cols) + "  check against onnxruntime")
    for name, entry in tunes.items():
        c = chosen.get(name)
        pick = f"{c.engine}/{c.threads}" if c else "-"
        times = " ".join(f"{entry.ms[c_] if c_ in entry.ms else float('nan'):11.2f} ms" for c_ in cols)
        checks = "; ".join(
            f"{e} {'ok' if v.get('ok') else 'OUTSIDE'} ({v.get('figure')}: {v.get('tolerance')})"
            for e, v in entry.checks.items()
        )
        print(f"{name:24} {pick:14} {times}  {checks}")
    print(f"machine: {cache.header['machine']}; engines: {cache.header['engines']}; threads allowed: "
          f"{settings.engine_threads()}")  # fmt: skip
    return 0


# -- operator commands over MQTT ------------------------------------------------------------
def _client(settings: Settings, role: str) -> Any:
    from agent.mqtt.client import SimpleClient

    return SimpleClient(settings.mqtt, f"maix-{role}-{uuid.uuid4().hex[:8]}")


def cmd_cmd(args: argparse.Namespace) -> int:
    import base64

    from agent.mqtt import codec

    settings = _settings(args)
    if "/" in args.command:
        family, command = args.command.split("/", 1)
    else:
        family, command = args.command, ""
    try:
        body = json.loads(args.body) if args.body else {}
    except json.JSONDecodeError as exc:
        print(f"error: the request is not valid JSON: {exc}", file=sys.stderr)
        return 1
    if not isinstance(body, dict):
        print("error: the request must be a JSON object", file=sys.stderr)
        return 1
    if args.image:
        body["image"] = base64.b64encode(Path(args.image).read_bytes()).decode()
    req_id = uuid.uuid4().hex[:12]
    body["id"] = req_id
    prefix = settings.mqtt.prefix
    topic = (
        f"{prefix}/fleet/{settings.device.fleet}/cmd/{args.command}"
        if args.fleet
        else f"{prefix}/{args.dev}/cmd/{args.command}"
    )
    reply_topic = f"{prefix}/{args.dev}/reply/{family}/{command}" if command else f"{prefix}/{args.dev}/reply/{family}"
    client = _client(settings, "cmd")
    client.subscribe(reply_topic)
    client.connect()
    try:
        client.publish(topic, json.dumps(body).encode())
        for msg in client.messages(timeout=args.timeout):
            try:
                reply = codec.decode(msg.payload, codec.sniff(msg.payload, msg.content_type), max_bytes=1 << 26)
            except codec.DecodeError:
                continue
            if isinstance(reply, dict) and reply.get("id") == req_id:
                print(json.dumps(reply, indent=None if args.compact else 2, default=str))
                return 0 if reply.get("ok") else 1
        print(f"error: no reply from {args.dev} on {reply_topic} within {args.timeout}s", file=sys.stderr)
        return 3
    finally:
        client.close()


def decode_for_print(payload: bytes, content_type: str | None) -> Any:
    from agent.mqtt import codec

    if payload[:2] == b"\xff\xd8":
        return {"jpeg_bytes": len(payload)}
    try:
        return codec.decode(payload, codec.sniff(payload, content_type), max_bytes=1 << 26)
    except codec.DecodeError:
        return payload.decode("utf-8", errors="replace")


def cmd_watch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    prefix = settings.mqtt.prefix
    client = _client(settings, "watch")
    topics = args.topic or [f"{prefix}/{args.dev}/result/#", f"{prefix}/{args.dev}/event/#"]
    for t in topics:
        client.subscribe(t)
    client.connect()
    count = 0
    try:
        for msg in client.messages(timeout=args.duration):
            body = decode_for_print(msg.payload, msg.content_type)
            print(json.dumps({"topic": msg.topic, "payload": body}, default=lambda b: f"<{len(b)} bytes>"), flush=True)
            count += 1
            if args.count and count >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from agent.offline import run_infer

    return run_infer(args)


def cmd_console(args: argparse.Namespace) -> int:
    from agent.console.server import run_console

    overrides: dict[str, Any] = {}
    if args.host or args.port is not None:
        overrides["console"] = {
            **({"host": args.host} if args.host else {}),
            **({"port": args.port} if args.port is not None else {}),
        }
    settings = _settings(args, **overrides)
    _setup_logging(args.log_level or settings.log_level)
    return run_console(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(args)


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maix-agent", description=__doc__)
    p.add_argument("--config", "-c", type=Path, default=None, help="YAML config file")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    sub = p.add_subparsers(dest="cmd", required=True)

    sub.add_parser("run", help="run the agent").set_defaults(fn=cmd_run)
    d = sub.add_parser("demo", help="run the demo on a sample video with an embedded broker")
    d.add_argument("--video", type=Path, default=None, help="video file (default: the shared VOT 'bag' video)")
    d.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    d.add_argument("--max-lines", type=int, default=None, help="stop after printing this many results")
    d.add_argument("--stream", action="store_true", help="print every result and event (as maix-agent watch)")
    d.add_argument("--no-console", action="store_true", help="do not start the console")
    d.add_argument("--console-port", type=int, default=8321, help="the console's port (0 = any free port)")
    d.set_defaults(fn=cmd_demo)
    co = sub.add_parser("console", help="serve the fleet console (a web page) as an MQTT client of the broker")
    co.add_argument("--host", default=None, help="listen address (default console.host, 127.0.0.1)")
    co.add_argument("--port", type=int, default=None, help="listen port (default console.port; 0 = any free port)")
    co.set_defaults(fn=cmd_console)
    sub.add_parser("check-config", help="validate the config; print every error").set_defaults(fn=cmd_check_config)
    sub.add_parser("print-config", help="print the effective config (secrets masked)").set_defaults(fn=cmd_print_config)

    m = sub.add_parser("models", help="fetch, list, verify model files; tune: choose each model's engine")
    m.add_argument("action", choices=["fetch", "list", "verify", "tune"])
    m.add_argument("--show", action="store_true", help="tune: print the cached measurements, measure nothing")
    m.add_argument("--all", action="store_true", help="tune: every model of the manifest (default: the config's)")
    m.add_argument("names", nargs="*", help="model names (default: all)")
    m.add_argument("--from", dest="mirror", default=None, help="mirror folder or http(s) URL base")
    m.set_defaults(fn=cmd_models)

    c = sub.add_parser("cmd", help="send a command and print the reply")
    c.add_argument("dev")
    c.add_argument("command", help="FAMILY/COMMAND, e.g. system/ping")
    c.add_argument("body", nargs="?", default=None, help="JSON request")
    c.add_argument("--image", type=Path, default=None, help="attach an image file")
    c.add_argument("--timeout", type=float, default=15.0)
    c.add_argument("--fleet", action="store_true", help="send on the fleet-wide topic")
    c.add_argument("--compact", action="store_true", help="one-line JSON")
    c.set_defaults(fn=cmd_cmd)

    i = sub.add_parser("infer", help="run a pipeline offline on images; one JSON line per image")
    i.add_argument("pipeline", help="classifier | faces | segment | track")
    i.add_argument("images", nargs="+", type=str)
    i.add_argument(
        "--enrol",
        action="append",
        default=[],
        metavar="LABEL=IMAGE",
        help="enrol a face (faces) or add a class view (classifier) first; repeatable",
    )
    i.add_argument("--box", default=None, help="track: x,y,w,h of the target in the first image")
    i.set_defaults(fn=cmd_infer)

    w = sub.add_parser("watch", help="print decoded results and events, one JSON line each")
    w.add_argument("dev")
    w.add_argument("--topic", action="append", default=None, help="topic filter (repeatable)")
    w.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    w.add_argument("--count", type=int, default=None, help="stop after this many messages")
    w.set_defaults(fn=cmd_watch)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd not in ("run", "demo", "console"):
        _setup_logging(args.log_level or "WARNING")
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 1
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
