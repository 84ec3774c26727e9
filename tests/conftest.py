"""Fixtures shared by every test: where models and evaluation data live.

Missing models or eval data are a failure, never a skip: `make test` fetches the models, and
../shared/eval (or MAIX_AGENT_EVAL_DIR) must exist.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from agent.models import Manifest, load_manifest
from agent.models.fetch import verify

REPO = Path(__file__).resolve().parents[1]
# Every agent a test starts (in process or as a subprocess) runs its models on onnxruntime, with
# one tuning cache for the whole session: no agent start pays a tuning run, and a test that asks
# for `auto` (tests/accuracy) tunes once per session, not against the user's own cache.
ENGINE_ENV = {
    "MAIX_AGENT_MODELS__ENGINE": "onnxruntime",
    "MAIX_AGENT_MODELS__TUNE_CACHE": str(Path(tempfile.mkdtemp(prefix="maix-tune-")) / "engines.json"),
}


def pytest_configure(config: pytest.Config) -> None:
    for k, v in ENGINE_ENV.items():
        os.environ.setdefault(k, v)


def engine_env(engine: str | None = None) -> dict[str, str]:
    """The engine settings of the test session (for subprocess environments built from scratch);
    ``engine`` overrides ``models.engine``."""
    env = {k: os.environ.get(k, v) for k, v in ENGINE_ENV.items()}
    if engine is not None:
        env["MAIX_AGENT_MODELS__ENGINE"] = engine
    return env


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return load_manifest()


@pytest.fixture(scope="session")
def models_dir(manifest: Manifest) -> Path:
    path = Path(os.environ.get("MAIX_AGENT_MODELS__DIR", REPO / "models"))
    bad = [v for v in (verify(s, path) for s in manifest.models.values()) if not v.ok]
    if bad:
        pytest.fail(
            "models not fetched or corrupt: "
            + ", ".join(f"{v.spec.file} ({v.status})" for v in bad)
            + " — run `make models`",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    path = Path(os.environ.get("MAIX_AGENT_EVAL_DIR", REPO.parent / "shared" / "eval"))
    if not path.is_dir():
        pytest.fail(f"evaluation data not found at {path} (set MAIX_AGENT_EVAL_DIR)", pytrace=False)
    return path
