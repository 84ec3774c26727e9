"""The base of every settings section, and how validation errors read: the bottom layer that
each part's own settings (``mqtt``, ``source``, the pipelines' thresholds) and the command
requests build on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def format_errors(exc: ValidationError, root: str = "(root)") -> list[str]:
    """One line per error: ``path.to.key: message`` (``root`` when the error has no path)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or root
        lines.append(f"{loc}: {err['msg']}")
    return lines


def topic_prefix(v: str) -> str:
    """A topic prefix: non-empty, no wildcards, no leading or trailing '/'."""
    if not v or any(c in v for c in "#+") or v.startswith("/") or v.endswith("/"):
        raise ValueError("prefix must be non-empty, without wildcards or leading/trailing '/'")
    return v
