"""maix-agent run | check-config | print-config | models fetch|list|verify."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from agent.cli.common import REPO, settings_of, setup_logging
from agent.errors import ConfigError
from agent.models import load_manifest
from agent.models.fetch import fetch, verify
from agent.pipelines.registry import PIPELINES
from agent.settings import masked_dump


def cmd_run(args: argparse.Namespace) -> int:
    from agent.app import Agent  # onnxruntime and the rest load only for the commands that run the agent

    settings = settings_of(args)
    setup_logging(args.log_level or settings.log_level)
    return Agent(settings).run_forever()


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = settings_of(args)  # a ConfigError is printed line by line by main(), exit 1
    manifest = load_manifest(settings.models.manifest)
    problems = 0
    for name in (n for p in PIPELINES for n in p.models(settings.models)):
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
    settings = settings_of(args)  # a ConfigError is printed line by line by main(), exit 1
    print(json.dumps(masked_dump(settings), indent=2))
    return 0


def default_mirror() -> str | None:
    env = os.environ.get("MAIX_AGENT_MODELS_MIRROR")
    if env:
        return env
    for candidate in (Path.cwd().parent / "shared" / "models", REPO.parent / "shared" / "models"):
        if candidate.is_dir():
            return str(candidate)
    return None


def cmd_models(args: argparse.Namespace) -> int:
    settings = settings_of(args)
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
    mirror = args.mirror or default_mirror()
    if not mirror:
        print("error: no mirror: pass --from DIR|URL or set MAIX_AGENT_MODELS_MIRROR", file=sys.stderr)
        return 1
    fetch(manifest, mirror, models_dir, args.names or None)
    return 0
