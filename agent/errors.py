"""The agent's exception hierarchy.

Every error a user can cause maps to one of these; the command router turns a
:class:`CommandError` into an error reply with its ``code`` and anything else
into ``internal``.
"""

from __future__ import annotations

from typing import Any, Literal

ErrorCode = Literal["bad_request", "not_found", "conflict", "unavailable", "too_large", "unauthorized", "internal"]


class AgentError(Exception):
    """Base class of every error raised on purpose by the agent."""


class ConfigError(AgentError):
    """The configuration is invalid; the message names the key."""


class ModelError(AgentError):
    """A model file is missing, corrupt or does not match its contract."""


class TransportError(AgentError):
    """The broker link failed in a way the agent cannot recover from (e.g. bad credentials)."""


class CommandError(AgentError):
    """A command could not be carried out; ``code`` is the protocol error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.req_id: Any = None  # the request's id, once the dispatcher knows it

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
