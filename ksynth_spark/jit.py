"""Compilation options of the numba kernels: the one place that decides how a kernel is compiled.

Every compiled kernel of the package is decorated with :func:`kernel` (or :func:`inline_kernel`
for the innermost helpers): cached on disk, no GIL, and no reference-counting runtime (kernels
never allocate: their Python wrappers pass every buffer; with the runtime each call passing
arrays paid atomic reference counts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

_F = TypeVar("_F", bound=Callable[..., Any])

#: The options of every compiled kernel.
JIT: dict[str, Any] = dict(cache=True, nogil=True, _nrt=False)
#: :data:`JIT` for the innermost helpers, inlined into their callers.
INLINE: dict[str, Any] = dict(JIT, inline="always")


def kernel(function: _F) -> _F:
    """Compiles ``function`` with :data:`JIT` (the compiled function keeps the Python signature)."""
    return cast(_F, njit(**JIT)(function))


def inline_kernel(function: _F) -> _F:
    """Compiles ``function`` with :data:`INLINE` (inlined into the kernels that call it)."""
    return cast(_F, njit(**INLINE)(function))


def allocating_kernel(function: _F) -> _F:
    """Compiles ``function`` cached and without the GIL, with numba's runtime (for the few
    kernels that allocate their result arrays)."""
    return cast(_F, njit(cache=True, nogil=True)(function))
