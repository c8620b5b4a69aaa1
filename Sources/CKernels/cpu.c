// Which vector instructions this CPU and OS support (checked at run time: the kernels carry target
// attributes, so the package needs no compiler flags).
#define _GNU_SOURCE
#include "ckernels.h"
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t hs_xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

int hs_cpu_level(void) {
    uint32_t a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int has_osxsave = (c >> 27) & 1, has_avx = (c >> 28) & 1, has_fma = (c >> 12) & 1, has_f16c = (c >> 29) & 1;
    if (!has_osxsave || !has_avx) return 0;
    uint64_t xcr0 = hs_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0;  // XMM and YMM state enabled by the OS
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int has_avx2 = (b >> 5) & 1, has_avx512f = (b >> 16) & 1;
    if (!(has_avx2 && has_fma && has_f16c)) return 0;  // level 1: AVX2, FMA and F16C
    if (has_avx512f && (xcr0 & 0xE6) == 0xE6) return 2;  // opmask, ZMM_Hi256, Hi16_ZMM enabled
    return 1;
}
#else
int hs_cpu_level(void) { return 0; }
#endif

// hs_cpu_level() asks CPUID (a serialising instruction): ask once.
int hs_cpu_level_cached(void) {
    static int level = -1;  // a benign race: every thread computes the same value
    int have = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (have < 0) {
        have = hs_cpu_level();
        __atomic_store_n(&level, have, __ATOMIC_RELAXED);
    }
    return have;
}
