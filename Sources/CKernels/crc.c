// CRC-32C (Castagnoli): hardware crc32 in three streams, carry-less folding with VPCLMULQDQ, and a portable
// table; the level is picked at run time.
#define _GNU_SOURCE
#include "ckernels.h"
#include "internal.h"
#include <pthread.h>
#include <stddef.h>

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
static int hs_has_sse42(void) { return 0; }
static uint32_t hs_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n) { (void)p; (void)n; return crc; }
static int hs_has_vpclmul(void) { return 0; }
static uint32_t hs_crc32c_vpclmul(uint32_t crc, const unsigned char *p, size_t n) { (void)p; (void)n; return crc; }
#endif

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
