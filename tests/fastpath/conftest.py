"""Fixtures of the fastpath tests: run a test once per SIMD level the CPU offers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import fastpath

# every level the kernels know; levels above what the CPU has are capped (and so run twice,
# harmlessly) rather than skipped
LEVELS = ("avx2", "sse2", "c")


@pytest.fixture(params=LEVELS)
def simd(request: pytest.FixtureRequest) -> Iterator[str]:
    """The SIMD level in use for this test run (restored to the best afterwards)."""
    fastpath.set_implementation("auto")
    got = fastpath.set_simd_level(request.param)
    try:
        yield got
    finally:
        fastpath.set_simd_level(None)
