// Distance kernels: float32, float32 against int8 codes, float32 against float16; AVX2+FMA and AVX-512
// versions picked at run time (hs_cpu_level), portable ones elsewhere.
#define _GNU_SOURCE
#include "ckernels.h"
#include "internal.h"
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static inline float hs_hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 s = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, s);
    s = _mm_add_ss(s, sh);
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
float hs_l2sq_avx2(const float *a, const float *b, size_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
        acc1 = _mm256_fmadd_ps(d1, d1, acc1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
    }
    float sum = hs_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) { float d = a[i] - b[i]; sum += d * d; }
    return sum;
}

__attribute__((target("avx2,fma")))
float hs_negdot_avx2(const float *a, const float *b, size_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    }
    float sum = hs_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) { sum += a[i] * b[i]; }
    return -sum;
}

__attribute__((target("avx512f")))
float hs_l2sq_avx512(const float *a, const float *b, size_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
        acc1 = _mm512_fmadd_ps(d1, d1, acc1);
    }
    if (i + 16 <= n) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
        i += 16;
    }
    if (i < n) {
        // The masked loads read only lanes [i, n): no access past either array.
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        acc1 = _mm512_fmadd_ps(d0, d0, acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

__attribute__((target("avx512f")))
float hs_negdot_avx512(const float *a, const float *b, size_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    if (i + 16 <= n) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        i += 16;
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
    }
    return -_mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// Dot product of float32 `q` with int8 codes `c`: each code is sign-extended to int32 and converted to
// float, so the sum is the same as the scalar reference up to the order of additions.
__attribute__((target("avx2,fma")))
float hs_dot_f32_i8_avx2(const float *q, const int8_t *c, size_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i c0 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + i)));
        __m256i c1 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + i + 8)));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtepi32_ps(c0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_cvtepi32_ps(c1), acc1);
    }
    float sum = hs_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) { sum += q[i] * (float)c[i]; }
    return sum;
}

__attribute__((target("avx512f")))
float hs_dot_f32_i8_avx512(const float *q, const int8_t *c, size_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i c0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + i)));
        __m512i c1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + i + 16)));
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtepi32_ps(c0), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), _mm512_cvtepi32_ps(c1), acc1);
    }
    if (i + 16 <= n) {
        __m512i c0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + i)));
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtepi32_ps(c0), acc0);
        i += 16;
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++) { sum += q[i] * (float)c[i]; }
    return sum;
}

// Squared L2 distance between float32 `q` and int8 codes `c` decoded as scale * c[i]. Computed directly
// (not as |q|^2 + |x|^2 - 2 q.x), so the quantisation error grows with the distance, not with the norms.
__attribute__((target("avx2,fma")))
float hs_l2sq_f32_i8_avx2(const float *q, const int8_t *c, size_t n, float scale) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), s = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 x0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + i))));
        __m256 x1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + i + 8))));
        __m256 d0 = _mm256_fnmadd_ps(s, x0, _mm256_loadu_ps(q + i));
        __m256 d1 = _mm256_fnmadd_ps(s, x1, _mm256_loadu_ps(q + i + 8));
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
        acc1 = _mm256_fmadd_ps(d1, d1, acc1);
    }
    float sum = hs_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) {
        float d = q[i] - scale * (float)c[i];
        sum += d * d;
    }
    return sum;
}

__attribute__((target("avx512f")))
float hs_l2sq_f32_i8_avx512(const float *q, const int8_t *c, size_t n, float scale) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), s = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 x0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + i))));
        __m512 x1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + i + 16))));
        __m512 d0 = _mm512_fnmadd_ps(s, x0, _mm512_loadu_ps(q + i));
        __m512 d1 = _mm512_fnmadd_ps(s, x1, _mm512_loadu_ps(q + i + 16));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
        acc1 = _mm512_fmadd_ps(d1, d1, acc1);
    }
    if (i + 16 <= n) {
        __m512 x0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + i))));
        __m512 d0 = _mm512_fnmadd_ps(s, x0, _mm512_loadu_ps(q + i));
        acc0 = _mm512_fmadd_ps(d0, d0, acc0);
        i += 16;
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++) {
        float d = q[i] - scale * (float)c[i];
        sum += d * d;
    }
    return sum;
}

#else
float hs_l2sq_avx2(const float *a, const float *b, size_t n) { (void)a; (void)b; (void)n; abort(); }
float hs_negdot_avx2(const float *a, const float *b, size_t n) { (void)a; (void)b; (void)n; abort(); }
float hs_l2sq_avx512(const float *a, const float *b, size_t n) { (void)a; (void)b; (void)n; abort(); }
float hs_negdot_avx512(const float *a, const float *b, size_t n) { (void)a; (void)b; (void)n; abort(); }
float hs_dot_f32_i8_avx2(const float *q, const int8_t *c, size_t n) { (void)q; (void)c; (void)n; abort(); }
float hs_dot_f32_i8_avx512(const float *q, const int8_t *c, size_t n) { (void)q; (void)c; (void)n; abort(); }
float hs_l2sq_f32_i8_avx2(const float *q, const int8_t *c, size_t n, float scale) { (void)q; (void)c; (void)n; (void)scale; abort(); }
float hs_l2sq_f32_i8_avx512(const float *q, const int8_t *c, size_t n, float scale) { (void)q; (void)c; (void)n; (void)scale; abort(); }
#endif

static float hs_l2sq_f32_f16_portable(const float *q, const uint16_t *c, size_t n) {
    float sum = 0;
    for (size_t i = 0; i < n; i++) {
        float d = q[i] - hs_half_to_float(c[i]);
        sum += d * d;
    }
    return sum;
}

static float hs_negdot_f32_f16_portable(const float *q, const uint16_t *c, size_t n) {
    float sum = 0;
    for (size_t i = 0; i < n; i++) sum += q[i] * hs_half_to_float(c[i]);
    return -sum;
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static float hs_l2sq_f32_f16_avx512(const float *q, const uint16_t *c, size_t n) {
    __m512 acc = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(c + i))));
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    return _mm512_reduce_add_ps(acc) + hs_l2sq_f32_f16_portable(q + i, c + i, n - i);
}

__attribute__((target("avx512f")))
static float hs_negdot_f32_f16_avx512(const float *q, const uint16_t *c, size_t n) {
    __m512 acc = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(c + i))), acc);
    }
    return -_mm512_reduce_add_ps(acc) + hs_negdot_f32_f16_portable(q + i, c + i, n - i);
}

// Level 1 includes F16C (hs_cpu_level checks it).
__attribute__((target("avx2,fma,f16c")))
static float hs_l2sq_f32_f16_avx2(const float *q, const uint16_t *c, size_t n) {
    __m256 acc = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i))));
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    return hs_hsum256(acc) + hs_l2sq_f32_f16_portable(q + i, c + i, n - i);
}

__attribute__((target("avx2,fma,f16c")))
static float hs_negdot_f32_f16_avx2(const float *q, const uint16_t *c, size_t n) {
    __m256 acc = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i))), acc);
    }
    return -hs_hsum256(acc) + hs_negdot_f32_f16_portable(q + i, c + i, n - i);
}
#endif

float hs_l2sq_f32_f16_at_level(int level, const float *q, const uint16_t *c, size_t n) {
#if defined(__x86_64__)
    int cpu = hs_cpu_level_cached();
    if (level >= 2 && cpu >= 2) return hs_l2sq_f32_f16_avx512(q, c, n);
    if (level >= 1 && cpu >= 1) return hs_l2sq_f32_f16_avx2(q, c, n);
#else
    (void)level;
#endif
    return hs_l2sq_f32_f16_portable(q, c, n);
}

float hs_negdot_f32_f16_at_level(int level, const float *q, const uint16_t *c, size_t n) {
#if defined(__x86_64__)
    int cpu = hs_cpu_level_cached();
    if (level >= 2 && cpu >= 2) return hs_negdot_f32_f16_avx512(q, c, n);
    if (level >= 1 && cpu >= 1) return hs_negdot_f32_f16_avx2(q, c, n);
#else
    (void)level;
#endif
    return hs_negdot_f32_f16_portable(q, c, n);
}

float hs_l2sq_f32_f16(const float *q, const uint16_t *c, size_t n) {
    return hs_l2sq_f32_f16_at_level(hs_cpu_level_cached(), q, c, n);
}

float hs_negdot_f32_f16(const float *q, const uint16_t *c, size_t n) {
    return hs_negdot_f32_f16_at_level(hs_cpu_level_cached(), q, c, n);
}
