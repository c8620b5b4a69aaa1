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
        // Only the set bits: lowest first, each cleared once added.
        for (uint64_t word = bits[w]; word != 0; word &= word - 1) sum += q[w * 64 + (size_t)__builtin_ctzll(word)];
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

// Eight bits of a word to eight lanes: lane j all ones when bit j is set (a broadcast byte against 1, 2, 4, … 128).
__attribute__((target("avx2,fma")))
static inline __m256 hs_bits_to_lanes(uint64_t byte) {
    const __m256i select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i b = _mm256_set1_epi32((int)byte);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(b, select), select));
}

__attribute__((target("avx2,fma")))
static float hs_masked_sum_f32_avx2(const float *q, const uint64_t *bits, size_t words) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (size_t w = 0; w < words; w++) {
        uint64_t word = bits[w];
        const float *p = q + w * 64;
        for (int g = 0; g < 8; g += 2) {
            a0 = _mm256_add_ps(a0, _mm256_and_ps(hs_bits_to_lanes(word >> (8 * g) & 0xFF), _mm256_loadu_ps(p + 8 * g)));
            a1 = _mm256_add_ps(a1, _mm256_and_ps(hs_bits_to_lanes(word >> (8 * g + 8) & 0xFF),
                                                 _mm256_loadu_ps(p + 8 * g + 8)));
        }
    }
    __m256 v = _mm256_add_ps(a0, a1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}
#endif

float hs_masked_sum_f32_at_level(int level, const float *q, const uint64_t *bits, size_t words) {
#if defined(__x86_64__)
    int cpu = hs_cpu_level_cached();
    if (level >= 2 && cpu >= 2) return hs_masked_sum_f32_avx512(q, bits, words);
    if (level >= 1 && cpu >= 1) return hs_masked_sum_f32_avx2(q, bits, words);
#else
    (void)level;
#endif
    return hs_masked_sum_f32_portable(q, bits, words);
}

float hs_masked_sum_f32(const float *q, const uint64_t *bits, size_t words) {
    return hs_masked_sum_f32_at_level(hs_cpu_level_cached(), q, bits, words);
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

// The same butterflies on registers of 8: strides 1, 2, 4 inside a register (partner lane by a permute, the
// upper lane of each pair blended from partner − self), then whole registers.
__attribute__((target("avx2,fma")))
static void hs_fwht_f32_avx2(float *x, size_t n) {
    for (size_t c = 0; c < n; c += 8) {
        __m256 v = _mm256_loadu_ps(x + c);
        __m256 s = _mm256_permute_ps(v, 0xB1);
        v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xAA);
        s = _mm256_permute_ps(v, 0x4E);
        v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xCC);
        s = _mm256_permute2f128_ps(v, v, 0x01);
        v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xF0);
        _mm256_storeu_ps(x + c, v);
    }
    for (size_t h = 8; h < n; h *= 2)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j += 8) {
                __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
                _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
                _mm256_storeu_ps(x + j + h, _mm256_sub_ps(a, b));
            }
}
#endif

void hs_fwht_f32_at_level(int level, float *x, size_t n) {
#if defined(__x86_64__)
    int cpu = hs_cpu_level_cached();
    if (n >= 16 && n % 16 == 0 && level >= 2 && cpu >= 2) { hs_fwht_f32_avx512(x, n); return; }
    if (n >= 8 && n % 8 == 0 && level >= 1 && cpu >= 1) { hs_fwht_f32_avx2(x, n); return; }
#else
    (void)level;
#endif
    hs_fwht_f32_portable(x, n);
}

void hs_fwht_f32(float *x, size_t n) { hs_fwht_f32_at_level(hs_cpu_level_cached(), x, n); }
