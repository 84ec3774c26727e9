"""Dispatch between the Cython kernels and the NumPy reference."""

from __future__ import annotations

import importlib

import pytest

import fastpath


def test_cython_kernels_are_built() -> None:
    # CI must fail when the extensions did not compile: no skip, no fallback here
    for name in ("fastpath._preprocess", "fastpath._compare"):
        mod = importlib.import_module(name)
        assert mod.__file__ is not None and not mod.__file__.endswith(".py")


def test_default_auto_uses_cython() -> None:
    fastpath.set_implementation("auto")
    assert fastpath.implementation() == "cython"


def test_python_and_back() -> None:
    try:
        fastpath.set_implementation("python")
        assert fastpath.implementation() == "python"
        fastpath.set_implementation("cython")
        assert fastpath.implementation() == "cython"
    finally:
        fastpath.set_implementation("auto")


@pytest.mark.parametrize("name", ["", "numpy", "CYTHON", "c"])
def test_invalid_name(name: str) -> None:
    with pytest.raises(ValueError, match="implementation must be one of"):
        fastpath.set_implementation(name)
    assert fastpath.implementation() == "cython"  # unchanged


def test_cython_missing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise ImportError("not built")

    monkeypatch.setattr(fastpath, "_import_kernels", boom)
    try:
        with pytest.raises(ImportError, match="not built"):
            fastpath.set_implementation("cython")
        fastpath.set_implementation("auto")
        assert fastpath.implementation() == "python"
    finally:
        monkeypatch.undo()
        fastpath.set_implementation("auto")
    assert fastpath.implementation() == "cython"
