"""Settings: defaults < YAML file (``--config``) < environment ``MAIX_AGENT_…`` (``__`` nests).

Built once by :func:`load_settings` (called from ``app.py`` / the CLI) and passed down; nothing
reads the environment at import time. Unknown keys are errors everywhere.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, create_model, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from agent.errors import ConfigError
from agent.models.tune import SpinSetting
from agent.mqtt.settings import MqttSettings
from agent.pipelines.registry import PIPELINES
from agent.sections import Section, format_errors, topic_prefix
from agent.sources.settings import SourceSettings

T = TypeVar("T")
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_yaml_file: ContextVar[Path | None] = ContextVar("maix_agent_yaml_file", default=None)


def default_device_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64].strip("-")
    return host or "maix"


class DeviceSettings(Section):
    id: str = Field(default_factory=default_device_id, description="device id ([A-Za-z0-9_-]; default: host name)")
    fleet: str = Field("default", description="fleet name: devices of one fleet share banks and fleet commands")
    name: str | None = Field(None, description="human-friendly name (Home Assistant)")

    @field_validator("id", "fleet")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError("must be 1-64 characters of [A-Za-z0-9_-]")
        return v


EngineName = Literal["auto", "onnxruntime", "opencv"]


class ModelsSettings(Section):
    dir: Path = Field(Path("models"), description="folder holding the model files")
    manifest: Path | None = Field(None, description="model manifest (default: the one shipped with the agent)")
    threads: int | None = Field(
        None,
        ge=1,
        le=64,
        description="onnxruntime intra-op threads per model (default: 1 in performance.mode throughput, "
        "else 2; with models.spin run or always also 1 when workers > 1)",
    )
    spin: SpinSetting = Field(
        "auto",
        description="when onnxruntime's worker threads busy-wait (threads > 1 only): auto (the default: per model, "
        "measured by tuning; never when a frame's pipelines run side by side) | never | run (while a model runs, "
        "stopping when it returns) | always (also between runs: CPU taken from the other pipelines, the source and "
        "MQTT); true / false mean always / never",
    )
    pin: bool = Field(
        True,
        description="pin each onnxruntime worker thread to a CPU of its own (the calling thread stays free): "
        "unpinned, the kernel may wake a worker on the caller's CPU after the cores idled",
    )

    @field_validator("spin", mode="before")
    @classmethod
    def _spin_bool(cls, v: object) -> object:
        return {True: "always", False: "never"}.get(v, v) if isinstance(v, bool) else v

    engine: EngineName | dict[str, EngineName] = Field(
        "auto",
        description="inference engine: auto (the fastest on this machine whose results match onnxruntime's, "
        "measured by `maix-agent models tune` or on first start, cached) | onnxruntime | opencv; or a map "
        "model name -> engine (models not named: auto)",
    )
    tune_cache: Path | None = Field(
        None, description="the tuning measurements (default: ~/.cache/maix-agent/engines.json; per machine)"
    )
    tune_images: Path | None = Field(
        None, description="evaluation images tuning runs on (default: ../shared/eval beside the working dir or repo)"
    )
    features: str = Field("mobilenet_v2", description="classifier feature model: mobilenet_v2 | efficientnet_lite0")
    face_detector: str = Field("retinaface", description="face detector: retinaface | yunet")
    face_embedder: str = Field("sface", description="face embedding model")
    segmenter: str = Field("yolov8n_seg", description="segmentation model")
    tracker: Literal["nanotrack_v2", "nanotrack_v3"] = Field("nanotrack_v2", description="tracker model pair")


def _pipelines_model() -> type[Section]:
    """``pipelines``: one switch per pipeline of the registry."""
    fields: dict[str, Any] = {p.name: (bool, Field(p.enabled, description=p.about)) for p in PIPELINES}
    return create_model("PipelinesSettings", __base__=Section, **fields)


def _thresholds_model() -> type[Section]:
    """``thresholds``: one section per pipeline of the registry (its thresholds model)."""
    fields: dict[str, Any] = {p.section: (p.thresholds, Field(default_factory=p.thresholds)) for p in PIPELINES}
    return create_model("Thresholds", __base__=Section, **fields)


def section_of(thresholds: Section, model: type[T]) -> T:
    """One pipeline's thresholds, typed: ``section_of(settings.thresholds, FaceThresholds).match``."""
    name: str = getattr(model, "section")  # noqa: B009 (a ClassVar of the pipeline's thresholds model)
    value = getattr(thresholds, name)
    if not isinstance(value, model):
        raise TypeError(f"thresholds.{name} is not a {model.__name__}")
    return value


if TYPE_CHECKING:  # built from the registry at import; typed access: section_of(), Controls.threshold()
    PipelinesSettings = Section
    Thresholds = Section
else:
    PipelinesSettings = _pipelines_model()
    Thresholds = _thresholds_model()


class StorageSettings(Section):
    dir: Path = Field(Path("state"), description="state dir: banks, thresholds, enabled pipelines")


class FleetSettings(Section):
    key: SecretStr | None = Field(None, description="HMAC key signing bank entries; unset = unsigned fleet (warns)")
    quiet: float = Field(
        1.0, gt=0, description="seconds without bank messages after (re)connecting before re-publishing what it lacks"
    )
    max_wait: float = Field(30.0, gt=0, description="longest wait for the broker's retained entries after connecting")
    queue_bytes: int = Field(64 << 20, ge=1 << 20, description="inbound bank messages held before dropping (resyncs)")
    subscribe_qos: Literal[0, 1] = Field(
        0, description="QoS of the bank subscriptions; 1 lets brokers drop retained floods past their queue limit"
    )

    @field_validator("key")
    @classmethod
    def _key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            raise ValueError("must not be empty (omit it for an unsigned fleet)")
        return v


class ReviewSettings(Section):
    keep: int = Field(50, ge=0, le=10_000, description="unknown faces kept for review (face/unknowns); 0 = off")
    retention_hours: float = Field(168.0, gt=0, description="a queued unknown face unseen this long is purged")


class FacesSettings(Section):
    review: ReviewSettings = Field(default_factory=ReviewSettings)


class HomeAssistantSettings(Section):
    enabled: bool = Field(False, description="publish Home Assistant MQTT discovery and JSON mirrors")
    prefix: str = Field("homeassistant", description="discovery prefix (HA's birth message is {prefix}/status)")
    refresh: float = Field(2.0, ge=0, description="seconds between JSON mirror refreshes of changing values")
    camera: bool = Field(False, description="an MQTT camera entity showing the annotated view (opt-in)")
    camera_interval: float = Field(10.0, ge=1, description="seconds between the annotated camera's frames")

    _prefix = field_validator("prefix")(topic_prefix)


class PreviewSettings(Section):
    fps: float = Field(5.0, gt=0, le=30, description="live view frames per second while a lease is held")
    width: int = Field(640, ge=64, le=4096, description="live view width in pixels (never wider than the frame)")
    quality: int = Field(70, ge=10, le=100, description="live view JPEG quality")
    max_lease: float = Field(300.0, ge=1, description="longest lease preview/start may take, seconds")


class ConsoleSettings(Section):
    host: str = Field("127.0.0.1", description="address the console listens on; other than loopback needs a token")
    port: int = Field(8321, ge=0, le=65535, description="console HTTP port (0 = any free port)")
    token: SecretStr | None = Field(None, description="access token: the browser sends it once, then a session cookie")
    origins: list[str] = Field(
        default_factory=list, description="extra allowed WebSocket origins (the page's own origin always is)"
    )
    lease: float = Field(10.0, ge=2, le=300, description="seconds a live-view lease lasts (renewed while watched)")
    timeout: float = Field(15.0, gt=0, description="seconds the console waits for an agent's reply")

    @field_validator("token")
    @classmethod
    def _token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 8:
            raise ValueError("must be at least 8 characters")
        return v


class EventsSettings(Section):
    debounce: float = Field(
        3.0, ge=0, description="seconds a face identity must be unseen before `left` (re-appearing sooner is no event)"
    )
    class_frames: int = Field(3, ge=1, description="frames a new class must hold before `class changed`")


class LimitsSettings(Section):
    command_bytes: int = Field(8 << 20, ge=1024, description="largest command payload (images included)")
    frame_bytes: int = Field(16 << 20, ge=1024, description="largest JPEG/PNG pushed on frame/in")
    bank_entry_bytes: int = Field(64 << 10, ge=1024, description="largest fleet bank entry")
    image_pixels: int = Field(40_000_000, ge=1, description="largest decoded image, in pixels")
    command_queue: int = Field(64, ge=1, description="pending commands before `unavailable` replies")
    faces_per_frame: int = Field(
        32, ge=1, le=750, description="most faces recognised in one frame or image (best detections first)"
    )
    expensive_rate: float = Field(
        10.0,
        ge=0,
        description="model-running commands (face/enrol, infer, classifier/add_class|add_sample, track/start) "
        "accepted per second per client; 0 = no limit",
    )
    expensive_burst: int = Field(
        20, ge=1, description="expensive commands a client may send at once before expensive_rate applies"
    )


class PerformanceSettings(Section):
    mode: Literal["latency", "throughput"] = Field(
        "latency",
        description="latency: each frame's enabled pipelines run side by side and its results go out as soon as "
        "they are ready; throughput: every pipeline runs in its own lane on the newest frame at its own pace, "
        "working on `parallel` frames at once (more results per second; each pipeline's results stay in frame "
        "order)",
    )
    workers: int = Field(
        2, ge=1, le=8, description="latency mode: threads running one frame's pipelines side by side (1 = in turn)"
    )
    parallel: int | None = Field(
        None,
        ge=1,
        le=8,
        description="throughput mode: frames each pipeline but track works on at once (default: one per CPU, "
        "at most 8; track needs every frame before the next; a pipeline's results still go out in frame order)",
    )


class ResultsSettings(Section):
    publish: Literal["every", "change"] = Field("every", description="publish results for every frame or on change")
    state_interval: float = Field(5.0, gt=0, description="seconds between retained state updates")


class Settings(BaseSettings):
    """Every setting of the agent. See config/agent.example.yaml."""

    model_config = SettingsConfigDict(
        env_prefix="MAIX_AGENT_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    device: DeviceSettings = Field(default_factory=DeviceSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    pipelines: PipelinesSettings = Field(default_factory=PipelinesSettings)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    faces: FacesSettings = Field(default_factory=FacesSettings)
    homeassistant: HomeAssistantSettings = Field(default_factory=HomeAssistantSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)
    performance: PerformanceSettings = Field(default_factory=PerformanceSettings)
    preview: PreviewSettings = Field(default_factory=PreviewSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    fastpath: Literal["auto", "cython", "python"] = Field("auto", description="kernel implementation")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")

    def model_threads(self) -> int:
        """onnxruntime intra-op threads per model: ``models.threads``, else 1 in throughput mode
        (each lane streams on its own: 2 threads a lane measured slower), else 2 — also with
        ``workers`` > 1, since sessions that do not spin share the cores well (faces + track,
        640x480, 2 cores: 35.7 fps with 2 threads a model against 30.8 with 1). With
        ``models.spin`` run or always, sessions side by side get 1 thread: two spinning pools on
        two cores slow each other down."""
        if self.models.threads is not None:
            return self.models.threads
        return 1 if self._sessions_side_by_side() else 2

    def _sessions_side_by_side(self) -> bool:
        """Sessions that would take each other's cores with two threads each: throughput lanes,
        or spinning pools run side by side."""
        spinning = self.models.spin in ("run", "always")
        return self.performance.mode == "throughput" or (spinning and self.performance.workers > 1)

    def model_spin(self) -> SpinSetting:
        """``models.spin``, except that ``auto`` means ``never`` when a frame's pipelines run side
        by side (latency mode, ``workers`` > 1, more than one pipeline enabled, as faces + track
        by default): each spinning pool then takes a core another pipeline needs (faces + track
        from a 60 fps camera, 2 cores: 35.4–37.2 fps with spinning, 37.5–37.7 without; at 30 fps
        the same latency)."""
        enabled = sum(bool(getattr(self.pipelines, p.name)) for p in PIPELINES)
        side_by_side = self.performance.mode == "latency" and self.performance.workers > 1 and enabled > 1
        return "never" if self.models.spin == "auto" and side_by_side else self.models.spin

    def one_thread_roles(self) -> frozenset[str]:
        """Model roles that get one onnxruntime thread whatever :meth:`model_threads` says (unless
        ``models.threads`` is set): NanoTrack's ~1 ms networks run slower on two threads that
        sleep between runs (backbone + head 1.28 ms with one, 1.49 ms with two, this machine)."""
        if self.models.threads is not None:
            return frozenset()
        return frozenset({"tracker_backbone", "tracker_head"})

    def engine_threads(self) -> tuple[int, ...]:
        """Thread counts a tuned choice may use: ``models.threads`` when set, 1 in throughput mode
        (lanes run side by side) or with spinning pools side by side, else 1 or 2."""
        if self.models.threads is not None:
            return (self.models.threads,)
        return (1,) if self._sessions_side_by_side() else (1, 2)

    def models_in_use(self) -> list[str]:
        """The manifest names of every model the configured pipelines can run."""
        return [name for p in PIPELINES for name in p.models(self.models)]

    def tune_images(self) -> Path:
        """``models.tune_images``, else the first ``shared/eval`` beside the working dir or the repo."""
        if self.models.tune_images is not None:
            return self.models.tune_images
        repo = Path(__file__).resolve().parents[1]
        for candidate in (Path.cwd().parent / "shared" / "eval", repo.parent / "shared" / "eval"):
            if candidate.is_dir():
                return candidate
        return repo.parent / "shared" / "eval"

    def lane_threads(self) -> int:
        """Frames a throughput lane works on at once: ``performance.parallel``, else one per CPU
        (faces + track on 640x480, 2 cores, a 60 fps camera: 50.7 fps with 2, 50.0 with 3)."""
        if self.performance.parallel is not None:
            return self.performance.parallel
        return max(1, min(8, os.cpu_count() or 1))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _yaml_file.get()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise :class:`ConfigError` with every problem, one per line."""
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"config file not found: {config}")
        import yaml  # local: only needed to pre-check the file

        try:
            data = yaml.safe_load(config.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config}: not valid YAML: {exc}") from None
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"{config}: the top level must be a mapping of sections")
    token = _yaml_file.set(config)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("\n".join(format_errors(exc))) from None
    finally:
        _yaml_file.reset(token)


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data, secrets shown as ``**********``."""
    return settings.model_dump(mode="json")
