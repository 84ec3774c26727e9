"""maix-agent run | check-config | print-config | models fetch|list|verify."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from agent.cli.common import REPO, settings_of, setup_logging
from agent.errors import ConfigError, ModelError
from agent.models import Manifest, load_manifest
from agent.models.fetch import fetch, verify
from agent.models.tune import IDLE_S, TuneCache, candidates, choose, default_cache, key, tune
from agent.pipelines.registry import PIPELINES
from agent.settings import Settings, masked_dump


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
    if args.action == "tune":
        return cmd_tune(args, settings, manifest)
    mirror = args.mirror or default_mirror()
    if not mirror:
        print("error: no mirror: pass --from DIR|URL or set MAIX_AGENT_MODELS_MIRROR", file=sys.stderr)
        return 1
    fetch(manifest, mirror, models_dir, args.names or None)
    return 0


def cmd_tune(args: argparse.Namespace, settings: Settings, manifest: Manifest) -> int:
    """``models tune``: measure every model the config uses on every engine and thread count
    (``--show``: print the cached table only), then print the table and the choice."""
    names = list(manifest.models) if args.all else args.names or settings.models_in_use()
    cache = TuneCache(settings.models.tune_cache or default_cache(), settings.models.pin)
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
    chosen = choose(tunes, settings.engine_threads(), forced, settings.model_spin())
    cols = [key(e, t, sp) for e, t, sp in candidates()]
    print(f"median ms a run, warm / cold (after {IDLE_S * 1e3:.0f} ms of idle cores); chosen: least warm + cold")
    print(f"{'model':24} {'chosen':19} " + " ".join(f"{c:>18}" for c in cols) + "  check against onnxruntime")
    for name, entry in tunes.items():
        c = chosen.get(name)
        pick = c.candidate if c else "-"
        times = " ".join(
            f"{entry.ms.get(c_, float('nan')):8.2f} /{entry.ms_cold.get(c_, float('nan')):8.2f}" for c_ in cols
        )
        checks = "; ".join(
            f"{e} {'ok' if v.get('ok') else 'OUTSIDE'} ({v.get('figure')}: {v.get('tolerance')})"
            for e, v in entry.checks.items()
        )
        print(f"{name:24} {pick:19} {times}  {checks}")
    print(f"machine: {cache.header['machine']}; engines: {cache.header['engines']}; threads allowed: "
          f"{settings.engine_threads()}; workers pinned: {cache.pin}")  # fmt: skip
    return 0
