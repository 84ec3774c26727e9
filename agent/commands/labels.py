"""The label type shared by the face and classifier commands."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field


def _clean(label: str) -> str:
    label = label.strip()
    if not label:
        raise ValueError("label must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in label):
        raise ValueError("label must not contain control characters")
    return label


Label = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_clean)]
Box = Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=4, max_length=4)]
