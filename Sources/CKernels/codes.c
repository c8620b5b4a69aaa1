// Kernels of the 1-bit codes (SignCodes): a sum of the query's values under a bit mask, and the fast
// Walsh–Hadamard transform that rotates vectors before they are coded.
#define _GNU_SOURCE
#include "ckernels.h"
#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

float hs_masked_sum_f32_portable(const float *q, const uint64_t *bits, size_t words) {
    float sum = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t word = bits[w];
        for (int i = 0; i < 64; i++) sum += (word >> i & 1) ? q[w * 64 + i] : 0.0f;
    }
    return sum;
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static float hs_masked_sum_f32_avx512(const float *q, const uint64_t *bits, size_t words) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (size_t w = 0; w < words; w++) {
        uint64_t word = bits[w];
        const float *p = q + w * 64;
        a0 = _mm512_mask_add_ps(a0, (__mmask16)word, a0, _mm512_loadu_ps(p));
        a1 = _mm512_mask_add_ps(a1, (__mmask16)(word >> 16), a1, _mm512_loadu_ps(p + 16));
        a0 = _mm512_mask_add_ps(a0, (__mmask16)(word >> 32), a0, _mm512_loadu_ps(p + 32));
        a1 = _mm512_mask_add_ps(a1, (__mmask16)(word >> 48), a1, _mm512_loadu_ps(p + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
#endif

float hs_masked_sum_f32(const float *q, const uint64_t *bits, size_t words) {
#if defined(__x86_64__)
    if (hs_cpu_level_cached() >= 2) return hs_masked_sum_f32_avx512(q, bits, words);
#endif
    return hs_masked_sum_f32_portable(q, bits, words);
}

void hs_fwht_f32_portable(float *x, size_t n) {
    for (size_t h = 1; h < n; h *= 2)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

#if defined(__x86_64__)
// Strides 1, 2, 4, 8 inside each register of 16 (the partner lane brought over by a permute; the upper lane of
// each pair takes partner − self), then whole registers. The same additions as the portable loop, so the same
// bits.
__attribute__((target("avx512f")))
static void hs_fwht_f32_avx512(float *x, size_t n) {
    for (size_t c = 0; c < n; c += 16) {
        __m512 v = _mm512_loadu_ps(x + c);
        __m512 s = _mm512_permute_ps(v, 0xB1);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, s), 0xAAAA, s, v);
        s = _mm512_permute_ps(v, 0x4E);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, s), 0xCCCC, s, v);
        s = _mm512_shuffle_f32x4(v, v, 0xB1);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, s), 0xF0F0, s, v);
        s = _mm512_shuffle_f32x4(v, v, 0x4E);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, s), 0xFF00, s, v);
        _mm512_storeu_ps(x + c, v);
    }
    for (size_t h = 16; h < n; h *= 2)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j += 16) {
                __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + h);
                _mm512_storeu_ps(x + j, _mm512_add_ps(a, b));
                _mm512_storeu_ps(x + j + h, _mm512_sub_ps(a, b));
            }
}
#endif

void hs_fwht_f32(float *x, size_t n) {
#if defined(__x86_64__)
    if (n >= 16 && n % 16 == 0 && hs_cpu_level_cached() >= 2) { hs_fwht_f32_avx512(x, n); return; }
#endif
    hs_fwht_f32_portable(x, n);
}
