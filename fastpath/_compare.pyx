# cython: language_level=3
"""Bank search kernels: cosine / L2 top-k over float32, float16 and int8 banks; one embedding's
per-label scores against a bank grouped by label, with its top two; L2 normalisation.

See fastpath/_reference.py (bank_scores, top_k, label_scores, l2_normalise) for the spec; inputs
are validated by fastpath/__init__.py. Ties keep the lower index (like a stable sort). The dot
products run in blocks of rows through _simd.h (AVX2 + FMA + F16C when the CPU has them, else
SSE2 / plain C); the block's scores then go through a small sorted top-k list (bank search) or a
per-label max (label_scores).
"""

import numpy as np

cimport numpy as cnp

from fastpath._arrays cimport carray as _carray
from libc.math cimport INFINITY, sqrt, sqrtf
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint16_t
from libc.stdlib cimport free, malloc


cdef extern from "_simd.h" nogil:
    int fp_simd_level()
    int fp_set_simd_level(int want)


cdef extern from "_dots.h" nogil:
    void fp_dots_i8(const int8_t *bank, Py_ssize_t n, Py_ssize_t d, const int16_t *q, int32_t *out)
    void fp_dots_f32(const float *bank, Py_ssize_t n, Py_ssize_t d, const float *q, float *out, int l2)
    void fp_dots_f16(const uint16_t *bank, Py_ssize_t n, Py_ssize_t d, const float *q, float *out, int l2)


cnp.import_array()

cdef enum:
    BLOCK = 256


def simd_level():
    """SIMD level in use by this module: 0 plain C, 1 SSE2, 2 AVX2 (+FMA, F16C)."""
    return fp_simd_level()


def set_simd_level(int level):
    """Cap the SIMD level; -1 = the best the CPU has."""
    return fp_set_simd_level(level)

cdef enum BankKind:
    F32 = 0
    F16 = 1
    I8 = 2


cdef inline void _push(float s, int64_t idx, float *bs, int64_t *bi, Py_ssize_t k,
                       Py_ssize_t *filled, bint higher) noexcept nogil:
    """Insert (s, idx) into the sorted top-k lists (best first)."""
    cdef Py_ssize_t j
    if filled[0] == k:
        if higher:
            if not (s > bs[k - 1]):
                return
        else:
            if not (s < bs[k - 1]):
                return
        j = k - 1
    else:
        j = filled[0]
        filled[0] += 1
    if higher:
        while j > 0 and s > bs[j - 1]:
            bs[j] = bs[j - 1]
            bi[j] = bi[j - 1]
            j -= 1
    else:
        while j > 0 and s < bs[j - 1]:
            bs[j] = bs[j - 1]
            bi[j] = bi[j - 1]
            j -= 1
    bs[j] = s
    bi[j] = idx


cdef int _search_one(
    int kind, const void *data, Py_ssize_t n, Py_ssize_t d,
    const float *inv_norms, const float *norms, const float *scales,
    const float *q, bint cosine, Py_ssize_t k, int64_t *out_idx, float *out_score,
    float *fblock, int32_t *iblock, int16_t *q16,
) noexcept nogil:
    """Top-k of one query. Returns -1 if the query is not finite."""
    cdef Py_ssize_t i, j, i0, m, filled = 0
    cdef double qq = 0.0
    cdef float qinv, qn, qs = 1.0, amax = 0.0, a, s, nb, lim
    for j in range(d):
        a = q[j]
        if not (a - a == 0.0):  # NaN or inf
            return -1
        qq += <double> a * a
        if a < 0:
            a = -a
        if a > amax:
            amax = a
    qn = <float> sqrt(qq)
    qinv = <float> (1.0 / qn) if qn > 0 else <float> 0.0
    if kind == I8:
        # per-query symmetric int16 quantisation, small enough that int32 dots cannot overflow
        lim = <float> ((2147483647 // (127 * d)) if (2147483647 // (127 * d)) < 32767 else 32767)
        qs = amax / lim if amax > 0 else <float> 1.0
        for j in range(d):
            a = q[j] / qs
            q16[j] = <int16_t> (a + 0.5 if a >= 0 else a - 0.5)
    i0 = 0
    while i0 < n:
        m = BLOCK if n - i0 > BLOCK else n - i0
        if kind == F32:
            fp_dots_f32(<const float *> data + i0 * d, m, d, q, fblock, 0 if cosine else 1)
        elif kind == F16:
            fp_dots_f16(<const uint16_t *> data + i0 * d, m, d, q, fblock, 0 if cosine else 1)
        else:
            fp_dots_i8(<const int8_t *> data + i0 * d, m, d, q16, iblock)
        for i in range(m):
            if kind == I8:
                s = <float> iblock[i] * scales[i0 + i] * qs  # ≈ q · b / |b|
                if cosine:
                    s = s * qinv
                else:
                    nb = norms[i0 + i]
                    s = nb * nb - 2.0 * nb * s + qn * qn
            elif cosine:
                s = fblock[i] * inv_norms[i0 + i] * qinv
            else:
                s = fblock[i]
            _push(s, i0 + i, out_score, out_idx, k, &filled, cosine)
        i0 += m
    if not cosine:
        for j in range(k):
            out_score[j] = sqrt(out_score[j]) if out_score[j] > 0 else 0.0
    return 0


def search(
    object data, int kind,
    const float[::1] inv_norms, const float[::1] norms, object scales,
    const float[:, ::1] queries, Py_ssize_t k, bint cosine,
):
    """Top-``k`` (k <= N, N >= 1) of every query: (indices int64 (Q, k), scores float32 (Q, k)).

    ``kind``: 0 float32 (data float32 (N, D)), 1 float16 (data viewed as uint16), 2 int8 (data
    int8 unit rows, ``scales`` float32 per row). Raises ValueError for a non-finite query."""
    cdef Py_ssize_t nq = queries.shape[0], d = queries.shape[1], qi
    cdef Py_ssize_t n = inv_norms.shape[0]
    cdef const float[:, ::1] f32
    cdef const uint16_t[:, ::1] f16
    cdef const int8_t[:, ::1] i8
    cdef const float[::1] sc
    cdef const void *ptr
    cdef const float *scp = NULL
    cdef float *fblock
    cdef int32_t *iblock
    cdef int16_t *q16
    cdef int bad = 0
    idx = np.empty((nq, k), np.int64)
    out = np.empty((nq, k), np.float32)
    cdef int64_t[:, ::1] vi = idx
    cdef float[:, ::1] vs = out
    if kind == F32:
        f32 = data
        ptr = &f32[0, 0]
    elif kind == F16:
        f16 = data
        ptr = &f16[0, 0]
    else:
        i8 = data
        ptr = &i8[0, 0]
        sc = scales
        scp = &sc[0]
    if nq == 0:
        return idx, out
    with nogil:
        fblock = <float *> malloc(BLOCK * sizeof(float))
        iblock = <int32_t *> malloc(BLOCK * sizeof(int32_t))
        q16 = <int16_t *> malloc((d + 1) * sizeof(int16_t))
        if fblock == NULL or iblock == NULL or q16 == NULL:
            bad = 2
        else:
            for qi in range(nq):
                if _search_one(kind, ptr, n, d, &inv_norms[0], &norms[0], scp, &queries[qi, 0],
                               cosine, k, &vi[qi, 0], &vs[qi, 0], fblock, iblock, q16) != 0:
                    bad = 1
                    break
        free(fblock)
        free(iblock)
        free(q16)
    if bad == 2:
        raise MemoryError()
    if bad:
        raise ValueError("query must be finite")
    return idx, out


cdef class BankHandle:
    """A bank's arrays held for repeated searches: one call per query, no re-validation (the
    public wrapper checks the query). Keeps references to the arrays it points into."""

    cdef object _keep
    cdef const void *data
    cdef const float *inv_norms
    cdef const float *norms
    cdef const float *scales
    cdef int kind
    cdef readonly Py_ssize_t n, d

    def __cinit__(self, object data, int kind, const float[::1] inv_norms, const float[::1] norms, object scales):
        cdef const float[:, ::1] f32
        cdef const uint16_t[:, ::1] f16
        cdef const int8_t[:, ::1] i8
        cdef const float[::1] sc
        self._keep = (data, inv_norms, norms, scales)
        self.kind = kind
        self.n = inv_norms.shape[0]
        self.scales = NULL
        if kind == F32:
            f32 = data
            self.d = f32.shape[1]
            self.data = &f32[0, 0] if self.n else NULL
        elif kind == F16:
            f16 = data
            self.d = f16.shape[1]
            self.data = &f16[0, 0] if self.n else NULL
        else:
            i8 = data
            sc = scales
            self.d = i8.shape[1]
            self.data = &i8[0, 0] if self.n else NULL
            self.scales = &sc[0] if self.n else NULL
        self.inv_norms = &inv_norms[0] if self.n else NULL
        self.norms = &norms[0] if self.n else NULL

    def search1(self, object query, Py_ssize_t k, bint cosine):
        """Top-``min(k, n)`` of one query: ((1, k) int64, (1, k) float32), or None when ``query``
        is not a C-contiguous float32 vector of length d (or the bank is empty): the caller then
        takes its general path. Raises ValueError for a non-finite query."""
        cdef cnp.ndarray q
        cdef cnp.ndarray idx
        cdef cnp.ndarray out
        cdef cnp.npy_intp dims[2]
        cdef float fblock[BLOCK]
        cdef int32_t iblock[BLOCK]
        cdef int16_t q16[512]
        cdef int16_t *q16p = q16
        cdef const float *qp
        cdef int64_t *ip
        cdef float *op
        cdef int rc = 0
        if self.n == 0 or k < 1 or not isinstance(query, cnp.ndarray):
            return None
        q = <cnp.ndarray> query
        if (cnp.PyArray_NDIM(q) != 1 or cnp.PyArray_TYPE(q) != cnp.NPY_FLOAT32
                or cnp.PyArray_DIM(q, 0) != self.d or not cnp.PyArray_IS_C_CONTIGUOUS(q)):
            return None
        if k > self.n:
            k = self.n
        dims[0] = 1
        dims[1] = k
        idx = cnp.PyArray_EMPTY(2, dims, cnp.NPY_INT64, 0)
        out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT32, 0)
        qp = <const float *> cnp.PyArray_DATA(q)
        ip = <int64_t *> cnp.PyArray_DATA(idx)
        op = <float *> cnp.PyArray_DATA(out)
        with nogil:
            if self.d >= 512:
                q16p = <int16_t *> malloc((self.d + 1) * sizeof(int16_t))
            if q16p == NULL:
                rc = 2
            else:
                rc = _search_one(self.kind, self.data, self.n, self.d, self.inv_norms, self.norms, self.scales,
                                 qp, cosine, k, ip, op, fblock, iblock, q16p)
                if q16p != q16:
                    free(q16p)
        if rc == 2:
            raise MemoryError()
        if rc != 0:
            raise ValueError("query must be finite")
        return idx, out


# ----------------------------------------------------------------------------------------------
# One embedding against a bank grouped by label (a face bank): per-label scores and the top two
# ----------------------------------------------------------------------------------------------
cdef int _label_scores(
    const float *data, Py_ssize_t n, Py_ssize_t d, const int64_t *starts, Py_ssize_t nl,
    const float *q, float *out, Py_ssize_t *best, float *lead,
) noexcept nogil:
    """The pass of label_scores: the dot products a block of rows at a time (_dots.h), each
    label's max, its score, the top two. Returns -1, having read nothing outside the rows, when
    ``starts`` do not split the rows [0, n) into ``nl`` non-empty runs; else 0."""
    cdef float block[BLOCK]
    cdef Py_ssize_t l, row = 0, b0 = 0, bend = 0, end, m
    cdef float c, mx = 0.0, s, top = -INFINITY, sec = -INFINITY
    cdef bint nan = False
    best[0] = -1
    if nl == 0:
        return 0 if n == 0 else -1
    if starts[0] != 0:
        return -1
    best[0] = 0
    for l in range(nl):
        end = starts[l + 1] if l + 1 < nl else n
        if end <= row or end > n:
            return -1
        while row < end:
            if row == bend:
                m = BLOCK if n - row > BLOCK else n - row
                fp_dots_f32(data + row * d, m, d, q, block, 0)
                b0 = row
                bend = row + m
            c = block[row - b0]
            # np.maximum: a NaN sticks (compared explicitly: the build keeps NaN semantics)
            if row == starts[l] or (mx == mx and not (c <= mx)):
                mx = c
            row += 1
        s = <float> 0.5 + <float> 0.5 * mx
        out[l] = s
        # the top two: np.argmax's pick (the first of ties, the first NaN) and lead_of's runner-up
        if nan:
            continue
        if s != s:
            nan = True
            best[0] = l
            top = s
        elif s > top:
            sec = top
            top = s
            best[0] = l
        elif s > sec:
            sec = s
    lead[0] = top - sec  # float32, as lead_of; NaN once a score is NaN
    return 0


# The two entry points below run once per face right after a model run, when the caches are cold
# and typed memoryviews plus the wrappers' attribute checks cost ~40 us a face (measured). So they
# take the arrays as objects, check them with NumPy's C macros and return None for anything else,
# like BankHandle.search1; fastpath.label_scores / l2_normalise then validate (with clear
# messages), convert and call again.
def label_scores(object grouped, object starts, object embedding):
    """(scores float32 (L,), best, similarity, lead or None): see _reference.label_scores. None
    unless ``grouped`` is float32 (N, D >= 1), ``starts`` int64 (L,) and ``embedding`` float32 (D,)
    (exact ndarrays, C-contiguous, aligned, native) and ``starts`` split the N rows into L
    non-empty runs."""
    if not (_carray(grouped, cnp.NPY_FLOAT32, 2) and _carray(starts, cnp.NPY_INT64, 1)
            and _carray(embedding, cnp.NPY_FLOAT32, 1)):
        return None
    cdef cnp.ndarray g = <cnp.ndarray> grouped
    cdef Py_ssize_t n = cnp.PyArray_DIM(g, 0), d = cnp.PyArray_DIM(g, 1), best = -1
    cdef Py_ssize_t nl = cnp.PyArray_DIM(<cnp.ndarray> starts, 0)
    if d < 1 or cnp.PyArray_DIM(<cnp.ndarray> embedding, 0) != d:
        return None
    cdef float lead = 0.0
    cdef int rc
    cdef cnp.npy_intp dims[1]
    dims[0] = nl
    cdef cnp.ndarray scores = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT32, 0)
    cdef float *sp = <float *> cnp.PyArray_DATA(scores)
    cdef const float *gp = <const float *> cnp.PyArray_DATA(g)
    cdef const int64_t *stp = <const int64_t *> cnp.PyArray_DATA(<cnp.ndarray> starts)
    cdef const float *qp = <const float *> cnp.PyArray_DATA(<cnp.ndarray> embedding)
    with nogil:
        rc = _label_scores(gp, n, d, stp, nl, qp, sp, &best, &lead)
    if rc != 0:
        return None
    return scores, best, (<double> sp[best] if best >= 0 else 0.0), (<double> lead if nl >= 2 else None)


def l2_normalise(object x):
    """x / |x| flattened into a new float32 vector (a copy of x when |x| is 0 or NaN): see
    _reference.l2_normalise. None unless ``x`` is a float32 array (exact ndarray, any shape,
    C-contiguous, aligned, native)."""
    if not _carray(x, cnp.NPY_FLOAT32, -1):
        return None
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray> x), j
    cdef const float *xp = <const float *> cnp.PyArray_DATA(<cnp.ndarray> x)
    cdef float ss = 0.0, norm
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT32, 0)
    cdef float *op = <float *> cnp.PyArray_DATA(out)
    with nogil:
        for j in range(n):
            ss += xp[j] * xp[j]  # float32, as np.dot: |x| overflows to inf past ~1.8e19
        norm = sqrtf(ss)
        if norm > 0:  # not NaN
            for j in range(n):
                op[j] = xp[j] / norm
        else:
            for j in range(n):
                op[j] = xp[j]
    return out
