/* SIMD support shared by the fastpath kernels (_resample.h, _dots.h).
 *
 * Portable build: nothing here needs -march. On x86-64 the SSE2 loops are the baseline (every
 * x86-64 CPU has SSE2); AVX2/FMA/F16C variants are compiled with GCC/Clang `target` attributes and
 * chosen at run time (fp_simd_level), like OpenCV's and NumPy's own dispatch. Elsewhere (ARM,
 * RISC-V, other compilers) the plain C loops are used. Every function has a scalar tail, reads
 * only inside the ranges it documents, and computes the same float32 operations in the same order
 * as fastpath/_reference.py (FMA variants may differ in the last bit).
 */
#ifndef FASTPATH_SIMD_H
#define FASTPATH_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64)
#define FP_SSE2 1
#include <emmintrin.h>
#else
#define FP_SSE2 0
#endif

#if FP_SSE2 && (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FP_HAVE_AVX2 1
#include <immintrin.h>
#define FP_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define FP_HAVE_AVX2 0
#endif

/* 0 = plain C, 1 = SSE2, 2 = AVX2 + FMA + F16C. */
static int fp_level = -1;

static int fp_detect_level(void) {
#if FP_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return 2;
#endif
    return FP_SSE2 ? 1 : 0;
}

static int fp_simd_level(void) {
    if (fp_level < 0) fp_level = fp_detect_level();
    return fp_level;
}

/* Cap the level (tests run every path): returns the level in use afterwards. */
static int fp_set_simd_level(int want) {
    int best = fp_detect_level();
    fp_level = want < 0 ? best : (want < best ? want : best);
    return fp_level;
}

#endif /* FASTPATH_SIMD_H */
