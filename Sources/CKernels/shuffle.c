// Bit and byte unshuffles of cold blocks (the inverse of the shuffles that make their floats compress):
// GFNI/VBMI and AVX-512 versions picked at run time, portable ones elsewhere.
#define _GNU_SOURCE
#include "ckernels.h"
#include "internal.h"
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

// MARK: bit unshuffle

static inline uint64_t hs_transpose8x8(uint64_t x) {
    uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
    x = x ^ t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
    x = x ^ t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
    return x ^ t ^ (t << 28);
}

void hs_bitunshuffle_portable(const uint8_t *p, size_t stride, size_t g0, size_t g1, uint8_t *out) {
    for (size_t g = g0; g < g1; g++) {
        uint64_t x = 0;
        for (int j = 0; j < 8; j++) x |= (uint64_t)p[(size_t)j * stride + g] << (8 * j);
        x = hs_transpose8x8(x);
        memcpy(out + 8 * (g - g0), &x, 8);
    }
}

#if defined(__x86_64__)
// Eight groups at a time: lane j of z holds bit plane j's bytes for groups g..g+7; a byte permute makes lane
// i hold group g+i's bytes from bit planes 7..0; GF2P8AFFINEQB with the matrix operand = that lane and the
// vector operand = byte i' = 1 << i' yields byte i', bit j = bit i' of bit plane j: the decoded bytes.
__attribute__((target("avx512f,avx512bw,avx512vbmi,gfni")))
static void hs_bitunshuffle_gfni(const uint8_t *p, size_t stride, size_t g0, size_t g1, uint8_t *out) {
    uint8_t order[64];
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 8; k++) order[8 * i + k] = (uint8_t)(8 * (7 - k) + i);
    const __m512i permute = _mm512_loadu_si512(order);
    const __m512i unit = _mm512_set1_epi64((long long)0x8040201008040201ULL);
    size_t g = g0;
    for (; g + 8 <= g1; g += 8) {
        uint64_t lanes[8];
        for (int j = 0; j < 8; j++) memcpy(&lanes[j], p + (size_t)j * stride + g, 8);
        __m512i z = _mm512_loadu_si512(lanes);
        __m512i w = _mm512_permutexvar_epi8(permute, z);
        _mm512_storeu_si512(out + 8 * (g - g0), _mm512_gf2p8affine_epi64_epi8(unit, w, 0));
    }
    hs_bitunshuffle_portable(p, stride, g, g1, out + 8 * (g - g0));
}

static int hs_has_gfni_vbmi(void) {
    uint32_t a, b, c, d;
    if (hs_cpu_level() < 2 || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int bw = (b >> 30) & 1, vbmi = (c >> 1) & 1, gfni = (c >> 8) & 1;
    return bw && vbmi && gfni;
}
#endif

void hs_bitunshuffle(const uint8_t *p, size_t stride, size_t g0, size_t g1, uint8_t *out) {
#if defined(__x86_64__)
    static int level = -1;  // a benign race: every thread computes the same value
    int have = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (have < 0) {
        have = hs_has_gfni_vbmi();
        __atomic_store_n(&level, have, __ATOMIC_RELAXED);
    }
    if (have) { hs_bitunshuffle_gfni(p, stride, g0, g1, out); return; }
#endif
    hs_bitunshuffle_portable(p, stride, g0, g1, out);
}

// MARK: byte unshuffle

static void hs_unshuffle_f32_portable(const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3,
                                      size_t n, int rotated, float *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)b0[i] | (uint32_t)b1[i] << 8 | (uint32_t)b2[i] << 16 | (uint32_t)b3[i] << 24;
        if (rotated) v = v >> 1 | v << 31;
        memcpy(out + i, &v, 4);
    }
}

static void hs_unshuffle_f16_portable(const uint8_t *b0, const uint8_t *b1, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = hs_half_to_float((uint16_t)(b0[i] | b1[i] << 8));
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static void hs_unshuffle_f32_avx512(const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3,
                                    size_t n, int rotated, float *out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b0 + i)));
        v = _mm512_or_si512(v, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b1 + i))), 8));
        v = _mm512_or_si512(v, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b2 + i))), 16));
        v = _mm512_or_si512(v, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b3 + i))), 24));
        if (rotated) v = _mm512_ror_epi32(v, 1);
        _mm512_storeu_si512(out + i, v);
    }
    hs_unshuffle_f32_portable(b0 + i, b1 + i, b2 + i, b3 + i, n - i, rotated, out + i);
}

__attribute__((target("avx512f")))
static void hs_unshuffle_f16_avx512(const uint8_t *b0, const uint8_t *b1, size_t n, float *out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(b0 + i)), hi = _mm_loadu_si128((const __m128i *)(b1 + i));
        __m256i halves = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(halves));
    }
    hs_unshuffle_f16_portable(b0 + i, b1 + i, n - i, out + i);
}

__attribute__((target("avx2")))
static inline __m256i hs_widen8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

__attribute__((target("avx2")))
static void hs_unshuffle_f32_avx2(const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3,
                                  size_t n, int rotated, float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = hs_widen8(b0 + i);
        v = _mm256_or_si256(v, _mm256_slli_epi32(hs_widen8(b1 + i), 8));
        v = _mm256_or_si256(v, _mm256_slli_epi32(hs_widen8(b2 + i), 16));
        v = _mm256_or_si256(v, _mm256_slli_epi32(hs_widen8(b3 + i), 24));
        if (rotated) v = _mm256_or_si256(_mm256_srli_epi32(v, 1), _mm256_slli_epi32(v, 31));
        _mm256_storeu_si256((__m256i *)(out + i), v);
    }
    hs_unshuffle_f32_portable(b0 + i, b1 + i, b2 + i, b3 + i, n - i, rotated, out + i);
}

// Level 1 includes F16C (hs_cpu_level checks it).
__attribute__((target("avx2,f16c")))
static void hs_unshuffle_f16_avx2(const uint8_t *b0, const uint8_t *b1, size_t n, float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i lo = _mm_loadl_epi64((const __m128i *)(b0 + i)), hi = _mm_loadl_epi64((const __m128i *)(b1 + i));
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_unpacklo_epi8(lo, hi)));
    }
    hs_unshuffle_f16_portable(b0 + i, b1 + i, n - i, out + i);
}
#endif

void hs_unshuffle_f32_at_level(int level, const uint8_t *b0, const uint8_t *b1, const uint8_t *b2,
                               const uint8_t *b3, size_t n, int rotated, float *out) {
#if defined(__x86_64__)
    int cpu = hs_cpu_level_cached();
    if (level >= 2 && cpu >= 2) { hs_unshuffle_f32_avx512(b0, b1, b2, b3, n, rotated, out); return; }
    if (level >= 1 && cpu >= 1) { hs_unshuffle_f32_avx2(b0, b1, b2, b3, n, rotated, out); return; }
#else
    (void)level;
#endif
    hs_unshuffle_f32_portable(b0, b1, b2, b3, n, rotated, out);
}

void hs_unshuffle_f16_at_level(int level, const uint8_t *b0, const uint8_t *b1, size_t n, float *out) {
#if defined(__x86_64__)
    int cpu = hs_cpu_level_cached();
    if (level >= 2 && cpu >= 2) { hs_unshuffle_f16_avx512(b0, b1, n, out); return; }
    if (level >= 1 && cpu >= 1) { hs_unshuffle_f16_avx2(b0, b1, n, out); return; }
#else
    (void)level;
#endif
    hs_unshuffle_f16_portable(b0, b1, n, out);
}

void hs_unshuffle_f32(const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3, size_t n,
                      int rotated, float *out) {
    hs_unshuffle_f32_at_level(hs_cpu_level_cached(), b0, b1, b2, b3, n, rotated, out);
}

void hs_unshuffle_f16(const uint8_t *b0, const uint8_t *b1, size_t n, float *out) {
    hs_unshuffle_f16_at_level(hs_cpu_level_cached(), b0, b1, n, out);
}
