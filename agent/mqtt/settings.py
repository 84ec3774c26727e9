"""The ``mqtt`` settings section: the broker link's own configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from agent.sections import Section, topic_prefix


class TlsSettings(Section):
    ca: Path | None = Field(None, description="CA certificate file (PEM) that signed the broker's certificate")
    cert: Path | None = Field(None, description="client certificate (PEM), for brokers that require one")
    key: Path | None = Field(None, description="client private key (PEM)")
    insecure: bool = Field(False, description="skip broker hostname/cert verification (self-signed; warns)")


class MqttSettings(Section):
    host: str = Field("localhost", description="broker host; `embedded` starts a private mosquitto")
    port: int = Field(1883, ge=0, le=65535, description="broker port (0 with `embedded` = any free port)")
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = Field(None, description="TLS to the broker; omit for plain TCP")
    client_id: str | None = Field(None, description="MQTT client id (default: maix-agent-{device.id})")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive seconds")
    prefix: str = Field("maix", description="topic prefix")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    qos: int = Field(1, ge=0, le=1, description="QoS of replies and results")
    reconnect_min: float = Field(1.0, gt=0, description="first reconnect delay, seconds")
    reconnect_max: float = Field(30.0, gt=0, description="longest reconnect delay, seconds")

    _prefix = field_validator("prefix")(topic_prefix)
