# cython: language_level=3
"""Checks shared by the kernels that take plain objects on their hot path (they return None for
anything else, and the Python wrapper then validates with clear messages)."""

cimport numpy as cnp


cdef inline bint carray(object a, int typenum, int ndim) noexcept:
    """An exact ndarray of this type and rank (any rank when ndim < 0), C-contiguous, aligned,
    in native byte order: what a kernel may read through its data pointer."""
    return (cnp.PyArray_CheckExact(a) and cnp.PyArray_TYPE(<cnp.ndarray> a) == typenum
            and (ndim < 0 or cnp.PyArray_NDIM(<cnp.ndarray> a) == ndim) and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray> a))
