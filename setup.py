"""Build the fastpath Cython extensions. A failed compile fails the build (no silent fallback)."""

from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
sources = sorted((HERE / "fastpath").glob("_*.pyx"))
extensions = [
    Extension(
        f"fastpath.{src.stem}",
        [str(src.relative_to(HERE))],
        include_dirs=[np.get_include()],
        depends=[str(h.relative_to(HERE)) for h in sorted((HERE / "fastpath").glob("_*.h"))],
        extra_compile_args=["-O3", "-ffast-math", "-fno-finite-math-only"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for src in sources
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
