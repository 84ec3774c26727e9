"""CLI: maix-agent run | demo | console | check-config | print-config | models … | cmd | watch | infer.

The global options (``--config``, ``--log-level``) work before or after the subcommand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.cli.common import settings_of, setup_logging
from agent.cli.config import cmd_check_config, cmd_models, cmd_print_config, cmd_run
from agent.cli.remote import cmd_cmd, cmd_watch
from agent.errors import AgentError, ConfigError


def cmd_infer(args: argparse.Namespace) -> int:
    from agent.cli.offline import run_infer  # loads the models: only for this command

    return run_infer(args)


def cmd_console(args: argparse.Namespace) -> int:
    from agent.console.server import run_console  # aiohttp: only for this command

    overrides: dict[str, Any] = {}
    if args.host or args.port is not None:
        overrides["console"] = {
            **({"host": args.host} if args.host else {}),
            **({"port": args.port} if args.port is not None else {}),
        }
    settings = settings_of(args, **overrides)
    setup_logging(args.log_level or settings.log_level)
    return run_console(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.cli.demo import run_demo  # starts the whole agent: only for this command

    return run_demo(args)


def _global_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """``--config`` and ``--log-level``: on the main parser with their defaults, on each
    subcommand with no default (argparse.SUPPRESS), so a value given after the subcommand wins
    and one given before it is not reset."""
    default: Any = None if defaults else argparse.SUPPRESS
    p.add_argument("--config", "-c", type=Path, default=default, help="YAML config file")
    p.add_argument("--log-level", default=default, help="DEBUG, INFO, WARNING, ERROR")


class _SubParsers:
    """``add_subparsers()`` whose every subcommand also takes the global options."""

    def __init__(self, sub: Any, parent: argparse.ArgumentParser) -> None:
        self._sub = sub
        self._parent = parent

    def add_parser(self, name: str, **kw: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._sub.add_parser(name, parents=[self._parent], **kw)
        return parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maix-agent", description=__doc__)
    _global_options(p, defaults=True)
    parent = argparse.ArgumentParser(add_help=False)
    _global_options(parent, defaults=False)
    sub = _SubParsers(p.add_subparsers(dest="cmd", required=True), parent)

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
    # each action its own parser, so names and flags mix in any order (``tune --show yunet``)
    actions = _SubParsers(m.add_subparsers(dest="action", required=True), parent)
    fe = actions.add_parser("fetch", help="copy model files from a mirror and check their sha256")
    fe.add_argument("names", nargs="*", help="model names (default: all)")
    fe.add_argument("--from", dest="mirror", default=None, help="mirror folder or http(s) URL base")
    actions.add_parser("list", help="every model of the manifest and its file's status")
    actions.add_parser("verify", help="check every model file's sha256; exit 1 when any is bad")
    tu = actions.add_parser(
        "tune", help="time each model on each engine, thread count and spinning, warm and cold; keep the fastest"
    )
    tu.add_argument("names", nargs="*", help="model names (default: the config's)")
    tu.add_argument("--show", action="store_true", help="print the cached measurements, measure nothing")
    tu.add_argument("--all", action="store_true", help="every model of the manifest (default: the config's)")
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
        setup_logging(args.log_level or "WARNING")
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 1
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
