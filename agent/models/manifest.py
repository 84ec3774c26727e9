"""Read ``models/manifest.toml``: every model by name, role, file, sha256 and input contract."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import ConfigError

Dim = int | str
DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "models" / "manifest.toml"


@dataclass(frozen=True)
class InputSpec:
    """The first input of a model and how pixels are turned into it."""

    name: str
    shape: tuple[Dim, ...]
    colour: str | None = None  # "rgb" | "bgr" | None for non-image inputs
    mean: float = 0.0
    scale: float = 1.0
    size: tuple[int, int] | None = None  # (H, W) the pipeline feeds
    pad: int | None = None  # letterbox pad value


@dataclass(frozen=True)
class ModelSpec:
    name: str
    role: str
    file: str
    sha256: str
    size: int
    licence: str
    upstream: str
    input: InputSpec
    extra_inputs: dict[str, tuple[Dim, ...]] = field(default_factory=dict)
    outputs: dict[str, tuple[Dim, ...]] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """First 12 hex chars of the sha256: names the model's feature space on the wire."""
        return self.sha256[:12]


@dataclass(frozen=True)
class Manifest:
    path: Path
    models: dict[str, ModelSpec]

    def get(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ConfigError(f"unknown model {name!r} (manifest {self.path} has: {known})") from None

    def by_role(self, role: str) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.role == role]


def _dims(raw: object, where: str) -> tuple[Dim, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, (int, str)) for d in raw):
        raise ConfigError(f"{where}: shape must be a list of ints and names")
    return tuple(raw)


def load_manifest(path: Path | None = None) -> Manifest:
    path = path or DEFAULT_MANIFEST
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"model manifest not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"model manifest {path} is not valid TOML: {exc}") from None
    models: dict[str, ModelSpec] = {}
    for name, raw in data.get("models", {}).items():
        where = f"{path}: models.{name}"
        try:
            inp = raw["input"]
            size = inp.get("size")
            spec = ModelSpec(
                name=name,
                role=raw["role"],
                file=raw["file"],
                sha256=raw["sha256"].lower(),
                size=int(raw["size"]),
                licence=raw["licence"],
                upstream=raw.get("upstream", ""),
                input=InputSpec(
                    name=inp["name"],
                    shape=_dims(inp["shape"], where + ".input.shape"),
                    colour=inp.get("colour"),
                    mean=float(inp.get("mean", 0.0)),
                    scale=float(inp.get("scale", 1.0)),
                    size=(int(size[0]), int(size[1])) if size else None,
                    pad=inp.get("pad"),
                ),
                extra_inputs={k: _dims(v, where) for k, v in raw.get("inputs_extra", {}).items()},
                outputs={k: _dims(v, where) for k, v in raw.get("outputs", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: bad entry ({exc!r})") from None
        if len(spec.sha256) != 64:
            raise ConfigError(f"{where}: sha256 must be 64 hex chars")
        models[name] = spec
    return Manifest(path=path, models=models)
