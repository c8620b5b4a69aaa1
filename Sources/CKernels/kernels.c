// Distance kernels chosen at run time. Each x86 kernel carries a target attribute, so the file needs no
// compiler flags; callers pick one through hs_cpu_level(), which checks both the CPU and the OS (XSAVE state).
#define _GNU_SOURCE
#include "ckernels.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sched.h>
#include <stdlib.h>

// Three independent crc32 streams hide the instruction's latency (3 cycles, one issued per cycle); their
// results are joined by "shifting" a CRC over the zero bytes of the streams after it, a linear map applied
// through four byte tables (hs_crc_shift_*, built in hs_crc_init from the GF(2) operator of one zero bit).
#define HS_CRC_LONG 4096
#define HS_CRC_SHORT 256
static uint32_t hs_crc_shift_long[4][256];
static uint32_t hs_crc_shift_short[4][256];
// Carry-less folding constants (see hs_crc32c_vpclmul), for folds of 2048, 512 and 128 bits.
static uint64_t hs_crc_fold_2048[2], hs_crc_fold_512[2], hs_crc_fold_128[2];

static inline uint32_t hs_crc_shift(uint32_t table[4][256], uint32_t crc) {
    return table[0][crc & 0xFF] ^ table[1][(crc >> 8) & 0xFF] ^ table[2][(crc >> 16) & 0xFF] ^ table[3][crc >> 24];
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

static uint64_t hs_xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

int hs_cpu_level(void) {
    uint32_t a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int has_osxsave = (c >> 27) & 1, has_avx = (c >> 28) & 1, has_fma = (c >> 12) & 1;
    if (!has_osxsave || !has_avx) return 0;
    uint64_t xcr0 = hs_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0;  // XMM and YMM state enabled by the OS
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int has_avx2 = (b >> 5) & 1, has_avx512f = (b >> 16) & 1;
    if (!(has_avx2 && has_fma)) return 0;
    if (has_avx512f && (xcr0 & 0xE6) == 0xE6) return 2;  // opmask, ZMM_Hi256, Hi16_ZMM enabled
    return 1;
}

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

__attribute__((target("sse4.2")))
static uint32_t hs_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c0 = (uint32_t)~crc;
    while (n >= 3 * HS_CRC_LONG || (n >= 3 * HS_CRC_SHORT)) {
        size_t part = n >= 3 * HS_CRC_LONG ? HS_CRC_LONG : HS_CRC_SHORT;
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < part; i += 8) {
            uint64_t w0, w1, w2;
            __builtin_memcpy(&w0, p + i, 8);
            __builtin_memcpy(&w1, p + part + i, 8);
            __builtin_memcpy(&w2, p + 2 * part + i, 8);
            c0 = _mm_crc32_u64(c0, w0);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
        }
        uint32_t (*shift)[256] = part == HS_CRC_LONG ? hs_crc_shift_long : hs_crc_shift_short;
        c0 = hs_crc_shift(shift, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = hs_crc_shift(shift, (uint32_t)c0) ^ (uint32_t)c2;
        p += 3 * part;
        n -= 3 * part;
    }
    while (n >= 8) {
        uint64_t w;
        __builtin_memcpy(&w, p, 8);
        c0 = _mm_crc32_u64(c0, w);
        p += 8; n -= 8;
    }
    uint32_t c32 = (uint32_t)c0;
    while (n > 0) { c32 = _mm_crc32_u8(c32, *p++); n--; }
    return ~c32;
}

static int hs_has_sse42(void) {
    uint32_t a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 20) & 1;
}

// Folding with carry-less multiplies (VPCLMULQDQ, 4 × 512 bits in flight): a 128-bit lane X of the message,
// followed by T more bits, is replaced by a value ≡ X·x^T (mod P) that lines up with the lane T bits on, and
// XORed into it; what is left at the end is one 128-bit value whose CRC (started from 0) is the message's
// remainder, finished with the crc32 instruction. Reflected order: bit j of a loaded lane is the coefficient
// of x^(127−j), and a 64 × 64 carry-less product of such values is x·A·B, hence the constants below are
// x^(63+T) for a lane's low qword (x^64 ahead of its high one) and x^(T−1) for its high qword.
__attribute__((target("avx512f,vpclmulqdq")))
static inline __m512i hs_crc_fold4(__m512i x, __m512i k) {
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11));
}

__attribute__((target("pclmul")))
static inline __m128i hs_crc_fold1(__m128i x, __m128i k) {
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))
static uint32_t hs_crc32c_vpclmul(uint32_t crc, const unsigned char *p, size_t n) {
    if (n < 256) return hs_crc32c_hw(crc, p, n);
    const __m512i k4 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)hs_crc_fold_2048));
    const __m512i k1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)hs_crc_fold_512));
    __m512i x0 = _mm512_loadu_si512(p), x1 = _mm512_loadu_si512(p + 64);
    __m512i x2 = _mm512_loadu_si512(p + 128), x3 = _mm512_loadu_si512(p + 192);
    // The running CRC enters as an XOR into the first four bytes (what the crc32 instruction does).
    x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)~crc)));
    p += 256; n -= 256;
    for (; n >= 256; p += 256, n -= 256) {
        x0 = _mm512_xor_si512(hs_crc_fold4(x0, k4), _mm512_loadu_si512(p));
        x1 = _mm512_xor_si512(hs_crc_fold4(x1, k4), _mm512_loadu_si512(p + 64));
        x2 = _mm512_xor_si512(hs_crc_fold4(x2, k4), _mm512_loadu_si512(p + 128));
        x3 = _mm512_xor_si512(hs_crc_fold4(x3, k4), _mm512_loadu_si512(p + 192));
    }
    x1 = _mm512_xor_si512(x1, hs_crc_fold4(x0, k1));
    x2 = _mm512_xor_si512(x2, hs_crc_fold4(x1, k1));
    x3 = _mm512_xor_si512(x3, hs_crc_fold4(x2, k1));
    for (; n >= 64; p += 64, n -= 64) x3 = _mm512_xor_si512(hs_crc_fold4(x3, k1), _mm512_loadu_si512(p));
    const __m128i k = _mm_loadu_si128((const __m128i *)hs_crc_fold_128);
    __m128i v = _mm512_extracti32x4_epi32(x3, 0);
    v = _mm_xor_si128(hs_crc_fold1(v, k), _mm512_extracti32x4_epi32(x3, 1));
    v = _mm_xor_si128(hs_crc_fold1(v, k), _mm512_extracti32x4_epi32(x3, 2));
    v = _mm_xor_si128(hs_crc_fold1(v, k), _mm512_extracti32x4_epi32(x3, 3));
    for (; n >= 16; p += 16, n -= 16) v = _mm_xor_si128(hs_crc_fold1(v, k), _mm_loadu_si128((const __m128i *)p));
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(v));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(v, 1));
    // Continue from the raw state c: hs_crc32c_hw complements on entry and exit.
    return hs_crc32c_hw(~(uint32_t)c, p, n);
}

static int hs_has_vpclmul(void) {
    uint32_t a, b, c, d;
    if (hs_cpu_level() < 2 || !__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int pclmul = (c >> 1) & 1, sse42 = (c >> 20) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return pclmul && sse42 && ((c >> 10) & 1);
}
#else
int hs_cpu_level(void) { return 0; }
float hs_l2sq_avx2(const float *a, const float *b, size_t n) { (void)a; (void)b; (void)n; abort(); }
float hs_negdot_avx2(const float *a, const float *b, size_t n) { (void)a; (void)b; (void)n; abort(); }
float hs_l2sq_avx512(const float *a, const float *b, size_t n) { (void)a; (void)b; (void)n; abort(); }
float hs_negdot_avx512(const float *a, const float *b, size_t n) { (void)a; (void)b; (void)n; abort(); }
float hs_dot_f32_i8_avx2(const float *q, const int8_t *c, size_t n) { (void)q; (void)c; (void)n; abort(); }
float hs_dot_f32_i8_avx512(const float *q, const int8_t *c, size_t n) { (void)q; (void)c; (void)n; abort(); }
float hs_l2sq_f32_i8_avx2(const float *q, const int8_t *c, size_t n, float scale) { (void)q; (void)c; (void)n; (void)scale; abort(); }
float hs_l2sq_f32_i8_avx512(const float *q, const int8_t *c, size_t n, float scale) { (void)q; (void)c; (void)n; (void)scale; abort(); }
static int hs_has_sse42(void) { return 0; }
static uint32_t hs_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) { (void)p; (void)n; return crc; }
static int hs_has_vpclmul(void) { return 0; }
static uint32_t hs_crc32c_vpclmul(uint32_t crc, const unsigned char *p, size_t n) { (void)p; (void)n; return crc; }
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

static inline float hs_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {  // subnormal: normalise
        int shift = 0;
        while (!(mantissa & 0x400)) { mantissa <<= 1; shift++; }
        bits = sign | ((uint32_t)(113 - shift) << 23) | ((mantissa & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

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
#endif

// hs_cpu_level() asks CPUID (a serialising instruction): ask once.
static int hs_cpu_level_cached(void) {
    static int level = -1;  // a benign race: every thread computes the same value
    int have = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (have < 0) {
        have = hs_cpu_level();
        __atomic_store_n(&level, have, __ATOMIC_RELAXED);
    }
    return have;
}

void hs_unshuffle_f32(const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3, size_t n,
                      int rotated, float *out) {
#if defined(__x86_64__)
    if (hs_cpu_level_cached() >= 2) { hs_unshuffle_f32_avx512(b0, b1, b2, b3, n, rotated, out); return; }
#endif
    hs_unshuffle_f32_portable(b0, b1, b2, b3, n, rotated, out);
}

void hs_unshuffle_f16(const uint8_t *b0, const uint8_t *b1, size_t n, float *out) {
#if defined(__x86_64__)
    if (hs_cpu_level_cached() >= 2) { hs_unshuffle_f16_avx512(b0, b1, n, out); return; }
#endif
    hs_unshuffle_f16_portable(b0, b1, n, out);
}

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
#endif

float hs_l2sq_f32_f16(const float *q, const uint16_t *c, size_t n) {
#if defined(__x86_64__)
    if (hs_cpu_level_cached() >= 2) return hs_l2sq_f32_f16_avx512(q, c, n);
#endif
    return hs_l2sq_f32_f16_portable(q, c, n);
}

float hs_negdot_f32_f16(const float *q, const uint16_t *c, size_t n) {
#if defined(__x86_64__)
    if (hs_cpu_level_cached() >= 2) return hs_negdot_f32_f16_avx512(q, c, n);
#endif
    return hs_negdot_f32_f16_portable(q, c, n);
}

static uint32_t hs_crc_table[256];
static pthread_once_t hs_crc_once = PTHREAD_ONCE_INIT;
static int hs_crc_hw = 0;

// GF(2) 32 × 32 matrices as 32 column words: the image of bit i is column i.
static uint32_t hs_gf2_times(const uint32_t *matrix, uint32_t vector) {
    uint32_t sum = 0;
    for (int i = 0; vector; i++, vector >>= 1) if (vector & 1) sum ^= matrix[i];
    return sum;
}

static void hs_gf2_square(uint32_t *square, const uint32_t *matrix) {
    for (int i = 0; i < 32; i++) square[i] = hs_gf2_times(matrix, matrix[i]);
}

// Tables applying the operator "append `bytes` zero bytes" (a power of two) to a CRC, byte by byte.
static void hs_crc_shift_tables(uint32_t table[4][256], size_t bytes) {
    uint32_t op[32], next[32];
    op[0] = 0x82F63B78u;  // one zero bit: shift right, fold the polynomial in when bit 0 falls out
    for (int i = 1; i < 32; i++) op[i] = 1u << (i - 1);
    for (size_t bits = 1; bits < 8 * bytes; bits *= 2) {
        hs_gf2_square(next, op);
        memcpy(op, next, sizeof op);
    }
    for (uint32_t v = 0; v < 256; v++)
        for (int b = 0; b < 4; b++) table[b][v] = hs_gf2_times(op, v << (8 * b));
}

// x^n mod P as a plain 32-bit polynomial (bit d: x^d), P = CRC-32C's 0x1EDC6F41 with its x^32 term.
static uint32_t hs_crc_xpow(unsigned n) {
    uint64_t r = 1;
    for (unsigned i = 0; i < n; i++) {
        r <<= 1;
        if (r >> 32) r ^= 0x11EDC6F41ull;
    }
    return (uint32_t)r;
}

// The two qword constants folding a 128-bit lane `bits` forward, reflected (x^d at bit 63 − d).
static void hs_crc_fold_constants(uint64_t k[2], unsigned bits) {
    uint32_t lo = hs_crc_xpow(63 + bits), hi = hs_crc_xpow(bits - 1);
    k[0] = k[1] = 0;
    for (int d = 0; d < 32; d++) {
        k[0] |= (uint64_t)((lo >> d) & 1) << (63 - d);
        k[1] |= (uint64_t)((hi >> d) & 1) << (63 - d);
    }
}

static void hs_crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
        hs_crc_table[i] = c;
    }
    hs_crc_shift_tables(hs_crc_shift_long, HS_CRC_LONG);
    hs_crc_shift_tables(hs_crc_shift_short, HS_CRC_SHORT);
    hs_crc_fold_constants(hs_crc_fold_2048, 2048);
    hs_crc_fold_constants(hs_crc_fold_512, 512);
    hs_crc_fold_constants(hs_crc_fold_128, 128);
    hs_crc_hw = hs_has_vpclmul() ? 2 : hs_has_sse42();
}

uint32_t hs_crc32c_portable(uint32_t crc, const void *data, size_t n) {
    pthread_once(&hs_crc_once, hs_crc_init);
    const unsigned char *p = (const unsigned char *)data;
    uint32_t c = ~crc;
    while (n--) c = hs_crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

int hs_crc32c_level(void) {
    pthread_once(&hs_crc_once, hs_crc_init);
    return hs_crc_hw;
}

uint32_t hs_crc32c_at_level(int level, uint32_t crc, const void *data, size_t n) {
    pthread_once(&hs_crc_once, hs_crc_init);
    const unsigned char *p = (const unsigned char *)data;
    if (level > hs_crc_hw) level = hs_crc_hw;
    if (level >= 2) return hs_crc32c_vpclmul(crc, p, n);
    if (level == 1) return hs_crc32c_hw(crc, p, n);
    return hs_crc32c_portable(crc, data, n);
}

uint32_t hs_crc32c(uint32_t crc, const void *data, size_t n) {
    return hs_crc32c_at_level(2, crc, data, n);
}

struct hs_rwlock { pthread_rwlock_t lock; };

hs_rwlock *hs_rwlock_create(void) {
    hs_rwlock *l = (hs_rwlock *)malloc(sizeof(hs_rwlock));
    if (!l) abort();
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    if (pthread_rwlock_init(&l->lock, &attr) != 0) abort();
    pthread_rwlockattr_destroy(&attr);
    return l;
}
void hs_rwlock_destroy(hs_rwlock *l) { pthread_rwlock_destroy(&l->lock); free(l); }
void hs_rwlock_read_lock(hs_rwlock *l) { if (pthread_rwlock_rdlock(&l->lock) != 0) abort(); }
void hs_rwlock_read_unlock(hs_rwlock *l) { pthread_rwlock_unlock(&l->lock); }
void hs_rwlock_write_lock(hs_rwlock *l) { if (pthread_rwlock_wrlock(&l->lock) != 0) abort(); }
void hs_rwlock_write_unlock(hs_rwlock *l) { pthread_rwlock_unlock(&l->lock); }

void hs_spin_wait(uint8_t *lock) {
    for (unsigned spins = 0;; spins++) {
        if (__atomic_load_n(lock, __ATOMIC_RELAXED) == 0 && __atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) == 0) return;
        if (spins > 64) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        else __builtin_ia32_pause();
#endif
    }
}

int hs_lock_file(int fd) { return hs_lock_file_as(fd, 0); }

int hs_lock_file_as(int fd, int shared) {
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = shared ? F_RDLCK : F_WRLCK;
    lock.l_whence = SEEK_SET;
    return fcntl(fd, F_SETLK, &lock) == 0 ? 0 : errno;
}
