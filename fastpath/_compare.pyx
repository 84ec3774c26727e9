# cython: language_level=3
"""Bank search kernels: cosine / L2 top-k over float32, float16 and int8 banks.

See fastpath/_reference.py (bank_scores, top_k) for the spec; inputs are validated by
fastpath/__init__.py. Ties keep the lower index (like a stable sort).
"""

from libc.math cimport sqrt
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint16_t, uint32_t


cdef union F32Bits:
    float f
    uint32_t u


cdef inline float _half_to_float(uint16_t h) noexcept nogil:
    # exact for normal and subnormal halves (no inf/nan handling: embeddings are finite)
    cdef F32Bits v
    v.u = (<uint32_t> (h & 0x7fff)) << 13
    v.f = v.f * <float> 5.192296858534828e+33  # 2 ** 112
    v.u = v.u | ((<uint32_t> (h & 0x8000)) << 16)
    return v.f


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


def topk_float(
    const float[:, ::1] bank,
    const float[::1] inv_norms,
    const float[:, ::1] queries,
    bint cosine,
    int64_t[:, ::1] out_idx,
    float[:, ::1] out_score,
):
    """float32 bank: cosine = q·b * inv|b| * inv|q|; l2 = ||q - b|| (computed directly)."""
    cdef Py_ssize_t n = bank.shape[0], d = bank.shape[1], nq = queries.shape[0]
    cdef Py_ssize_t k = out_idx.shape[1]
    cdef Py_ssize_t i, j, qi, filled
    cdef const float *row
    cdef const float *q
    cdef float acc, diff, qinv, qq
    with nogil:
        for qi in range(nq):
            q = &queries[qi, 0]
            filled = 0
            qq = 0.0
            for j in range(d):
                qq = qq + q[j] * q[j]
            qinv = <float> (1.0 / sqrt(qq)) if qq > 0 else <float> 0.0
            for i in range(n):
                row = &bank[i, 0]
                acc = 0.0
                if cosine:
                    for j in range(d):
                        acc = acc + row[j] * q[j]
                    acc = acc * inv_norms[i] * qinv
                else:
                    for j in range(d):
                        diff = row[j] - q[j]
                        acc = acc + diff * diff
                _push(acc, i, &out_score[qi, 0], &out_idx[qi, 0], k, &filled, cosine)
            if not cosine:
                for j in range(k):
                    out_score[qi, j] = sqrt(out_score[qi, j])


def topk_half(
    const uint16_t[:, ::1] bank,
    const float[::1] inv_norms,
    const float[:, ::1] queries,
    bint cosine,
    int64_t[:, ::1] out_idx,
    float[:, ::1] out_score,
):
    """float16 bank (raw bits as uint16), converted on the fly; otherwise as topk_float."""
    cdef Py_ssize_t n = bank.shape[0], d = bank.shape[1], nq = queries.shape[0]
    cdef Py_ssize_t k = out_idx.shape[1]
    cdef Py_ssize_t i, j, qi, filled
    cdef const uint16_t *row
    cdef const float *q
    cdef float acc, diff, qinv, qq
    with nogil:
        for qi in range(nq):
            q = &queries[qi, 0]
            filled = 0
            qq = 0.0
            for j in range(d):
                qq = qq + q[j] * q[j]
            qinv = <float> (1.0 / sqrt(qq)) if qq > 0 else <float> 0.0
            for i in range(n):
                row = &bank[i, 0]
                acc = 0.0
                if cosine:
                    for j in range(d):
                        acc = acc + _half_to_float(row[j]) * q[j]
                    acc = acc * inv_norms[i] * qinv
                else:
                    for j in range(d):
                        diff = _half_to_float(row[j]) - q[j]
                        acc = acc + diff * diff
                _push(acc, i, &out_score[qi, 0], &out_idx[qi, 0], k, &filled, cosine)
            if not cosine:
                for j in range(k):
                    out_score[qi, j] = sqrt(out_score[qi, j])


def topk_int8(
    const int8_t[:, ::1] bank,
    const float[::1] scales,
    const float[::1] norms,
    const int16_t[:, ::1] queries,
    const float[::1] qscales,
    const float[::1] qnorms,
    bint cosine,
    int64_t[:, ::1] out_idx,
    float[:, ::1] out_score,
):
    """int8 bank of quantised unit rows (row ≈ bank[i] * scales[i] / 1) against int16-quantised
    queries (q ≈ queries[qi] * qscales[qi]); integer dot products, int32 accumulation.

    cosine = dot_unit / |q|; l2 = sqrt(|b|² - 2 |b| dot_unit + |q|²) with dot_unit ≈ q · b/|b|.
    """
    cdef Py_ssize_t n = bank.shape[0], d = bank.shape[1], nq = queries.shape[0]
    cdef Py_ssize_t k = out_idx.shape[1]
    cdef Py_ssize_t i, j, qi, filled
    cdef const int8_t *row
    cdef const int16_t *q
    cdef int32_t acc
    cdef float unit, qs, qn, qinv, nb, s
    with nogil:
        for qi in range(nq):
            q = &queries[qi, 0]
            qs = qscales[qi]
            qn = qnorms[qi]
            qinv = <float> (1.0 / qn) if qn > 0 else <float> 0.0
            filled = 0
            for i in range(n):
                row = &bank[i, 0]
                acc = 0
                for j in range(d):
                    acc = acc + <int32_t> row[j] * <int32_t> q[j]
                unit = <float> acc * scales[i] * qs
                if cosine:
                    s = unit * qinv
                else:
                    nb = norms[i]
                    s = nb * nb - 2.0 * nb * unit + qn * qn
                _push(s, i, &out_score[qi, 0], &out_idx[qi, 0], k, &filled, cosine)
            if not cosine:
                for j in range(k):
                    out_score[qi, j] = sqrt(out_score[qi, j]) if out_score[qi, j] > 0 else 0.0
