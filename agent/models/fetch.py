"""Copy model files from a mirror (a folder or an http(s) URL base) and verify them by sha256."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ModelError
from agent.models.manifest import Manifest, ModelSpec

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Verdict:
    spec: ModelSpec
    path: Path
    status: str  # "ok" | "missing" | "corrupt"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def fetch_hint(spec: ModelSpec, models_dir: Path) -> str:
    return (
        f"run `maix-agent models fetch --from MIRROR` (or set MAIX_AGENT_MODELS_MIRROR and run "
        f"`make models`) to put {spec.file} (sha256 {spec.sha256[:12]}…) into {models_dir}"
    )


def verify(spec: ModelSpec, models_dir: Path) -> Verdict:
    path = models_dir / spec.file
    if not path.is_file():
        return Verdict(spec, path, "missing")
    if path.stat().st_size != spec.size or sha256_of(path) != spec.sha256:
        return Verdict(spec, path, "corrupt")
    return Verdict(spec, path, "ok")


def require(spec: ModelSpec, models_dir: Path) -> Path:
    """Return the verified path of a model file, or raise one clear :class:`ModelError`."""
    verdict = verify(spec, models_dir)
    if verdict.status == "missing":
        raise ModelError(f"model file {verdict.path} is missing: {fetch_hint(spec, models_dir)}")
    if verdict.status == "corrupt":
        raise ModelError(
            f"model file {verdict.path} does not match sha256 {spec.sha256} from the manifest "
            f"(corrupt or a different model): {fetch_hint(spec, models_dir)}"
        )
    return verdict.path


def _open_source(mirror: str, spec: ModelSpec) -> Callable[[], io.BufferedIOBase]:
    if mirror.startswith(("http://", "https://")):
        url = mirror.rstrip("/") + "/" + spec.file
        return lambda: urllib.request.urlopen(url, timeout=60)
    src = Path(mirror) / spec.file
    return lambda: src.open("rb")


def fetch(
    manifest: Manifest,
    mirror: str,
    models_dir: Path,
    names: Iterable[str] | None = None,
    progress: Callable[[str], None] = print,
) -> list[Verdict]:
    """Fetch the named models (all by default) that are missing or corrupt; verify every one.

    A file is written to a temp name in ``models_dir``, hashed while copying and renamed into
    place only when its sha256 matches, so an interrupted or bad download never leaves a file
    that looks valid.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    specs = [manifest.get(n) for n in names] if names else list(manifest.models.values())
    results: list[Verdict] = []
    for spec in specs:
        if verify(spec, models_dir).ok:
            progress(f"ok       {spec.file}")
            results.append(Verdict(spec, models_dir / spec.file, "ok"))
            continue
        progress(f"fetching {spec.file} ({spec.size / 1e6:.1f} MB) from {mirror}")
        fd, tmp_name = tempfile.mkstemp(prefix=".fetch-", dir=models_dir)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            try:
                src = _open_source(mirror, spec)()
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot read {spec.file} from mirror {mirror}: {exc}") from exc
            with os.fdopen(fd, "wb") as out, src as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != spec.sha256:
                raise ModelError(
                    f"{spec.file} from mirror {mirror} has sha256 {digest.hexdigest()}, "
                    f"manifest says {spec.sha256}: refusing it"
                )
            os.replace(tmp, models_dir / spec.file)
        finally:
            if tmp.exists():
                tmp.unlink()
        progress(f"ok       {spec.file}")
        results.append(Verdict(spec, models_dir / spec.file, "ok"))
    return results
