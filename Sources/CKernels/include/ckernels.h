#ifndef HYBRIDSTORE_CKERNELS_H
#define HYBRIDSTORE_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A distance kernel over two float arrays of `n` elements. Both pointers must be valid for `n` reads.
typedef float (*hs_distance_fn)(const float *a, const float *b, size_t n);

/// 0 = portable only, 1 = AVX2 + FMA usable, 2 = AVX-512F usable (CPU and OS both support it).
int hs_cpu_level(void);
// The dispatched kernels below pick the best path for this CPU; each `_at_level` twin takes the level to use
// instead (0 portable, 1 AVX2/FMA/F16C, 2 AVX-512; capped at hs_cpu_level()), so tests can compare every path
// the machine has.

/// Squared Euclidean distance, AVX2 + FMA. Call only when hs_cpu_level() >= 1.
float hs_l2sq_avx2(const float *a, const float *b, size_t n);
/// Negated dot product, AVX2 + FMA. Call only when hs_cpu_level() >= 1.
float hs_negdot_avx2(const float *a, const float *b, size_t n);
/// Squared Euclidean distance, AVX-512F. Call only when hs_cpu_level() >= 2.
float hs_l2sq_avx512(const float *a, const float *b, size_t n);
/// Negated dot product, AVX-512F. Call only when hs_cpu_level() >= 2.
float hs_negdot_avx512(const float *a, const float *b, size_t n);

/// A kernel over float32 `q` and int8 codes `c`, `n` elements each: the dot product sum(q[i] * c[i]).
typedef float (*hs_code_dot_fn)(const float *q, const int8_t *c, size_t n);
/// Dot product of float32 with int8 codes, AVX2 + FMA. Call only when hs_cpu_level() >= 1.
float hs_dot_f32_i8_avx2(const float *q, const int8_t *c, size_t n);
/// Dot product of float32 with int8 codes, AVX-512F. Call only when hs_cpu_level() >= 2.
float hs_dot_f32_i8_avx512(const float *q, const int8_t *c, size_t n);

/// A kernel over float32 `q` and int8 codes `c` decoded as `scale * c[i]`: the squared L2 distance.
typedef float (*hs_code_l2_fn)(const float *q, const int8_t *c, size_t n, float scale);
/// Squared L2 distance of float32 to scaled int8 codes, AVX2 + FMA. Call only when hs_cpu_level() >= 1.
float hs_l2sq_f32_i8_avx2(const float *q, const int8_t *c, size_t n, float scale);
/// Squared L2 distance of float32 to scaled int8 codes, AVX-512F. Call only when hs_cpu_level() >= 2.
float hs_l2sq_f32_i8_avx512(const float *q, const int8_t *c, size_t n, float scale);

/// CRC-32C (Castagnoli) of `n` bytes, continuing from `crc` (start with 0). Uses VPCLMULQDQ or SSE4.2 when present.
uint32_t hs_crc32c(uint32_t crc, const void *data, size_t n);
/// The table-driven CRC-32C (the reference for tests).
uint32_t hs_crc32c_portable(uint32_t crc, const void *data, size_t n);
/// Which CRC-32C path hs_crc32c takes here: 0 tables, 1 three crc32 streams (SSE4.2), 2 carry-less folding
/// (AVX-512 + VPCLMULQDQ; inputs of 256 bytes or more).
int hs_crc32c_level(void);
/// hs_crc32c through the path of `level` (capped at hs_crc32c_level()), so tests can compare every path.
uint32_t hs_crc32c_at_level(int level, uint32_t crc, const void *data, size_t n);

/// Undoes a bit shuffle for 8-byte groups [g0, g1) of a byte plane whose 8 bit planes are `stride` bytes
/// long each (bit j of byte 8g + i was stored as bit i of byte j * stride + g), writing 8 bytes a group to
/// `out`. Uses AVX-512 VBMI + GFNI when the CPU has them (a byte permute and an affine bit transpose per
/// 8 groups), else 64-bit shifts. `planes` must be valid for 8 * stride bytes, `out` for 8 * (g1 - g0).
void hs_bitunshuffle(const uint8_t *planes, size_t stride, size_t g0, size_t g1, uint8_t *out);
/// The portable path of hs_bitunshuffle (for tests that compare the two).
void hs_bitunshuffle_portable(const uint8_t *planes, size_t stride, size_t g0, size_t g1, uint8_t *out);

/// Puts float32 values back together from 4 byte planes (plane b holds byte b of each value): out[i] =
/// b0[i] | b1[i] << 8 | b2[i] << 16 | b3[i] << 24, rotated right by one bit when `rotated` (undoing a left
/// rotation). AVX-512 when present.
void hs_unshuffle_f32(const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3, size_t n,
                      int rotated, float *out);
/// Puts float16 values back together from 2 byte planes and widens them to float32. F16C/AVX-512 when present.
void hs_unshuffle_f16(const uint8_t *b0, const uint8_t *b1, size_t n, float *out);
void hs_unshuffle_f32_at_level(int level, const uint8_t *b0, const uint8_t *b1, const uint8_t *b2,
                               const uint8_t *b3, size_t n, int rotated, float *out);
void hs_unshuffle_f16_at_level(int level, const uint8_t *b0, const uint8_t *b1, size_t n, float *out);

/// The sum of q[i] over the set bits i of `bits` (bit i is bit i % 64 of word i / 64), `words` words, so
/// q is read for 64 * words elements. AVX-512 masked adds, or AVX2 masks, when present. (The cold tier's codes, one bit plane at a time.)
float hs_masked_sum_f32(const float *q, const uint64_t *bits, size_t words);
/// The portable path of hs_masked_sum_f32 (for tests that compare the two).
float hs_masked_sum_f32_portable(const float *q, const uint64_t *bits, size_t words);
float hs_masked_sum_f32_at_level(int level, const float *q, const uint64_t *bits, size_t words);
/// In place, the unnormalised Walsh–Hadamard transform of `n` floats (`n` a power of two): butterflies
/// (a, b) → (a + b, a − b) at strides 1, 2, 4, … n/2. AVX-512F or AVX2 when present (the same bits as the portable path).
void hs_fwht_f32(float *x, size_t n);
/// The portable path of hs_fwht_f32 (for tests that compare the two).
void hs_fwht_f32_portable(float *x, size_t n);
void hs_fwht_f32_at_level(int level, float *x, size_t n);

/// Squared L2 distance from float32 `q` to float16 `c` (IEEE binary16 bit patterns), `n` elements each.
/// AVX-512 or AVX2/F16C when present. (The cold tier's block centroids.)
float hs_l2sq_f32_f16(const float *q, const uint16_t *c, size_t n);
float hs_l2sq_f32_f16_at_level(int level, const float *q, const uint16_t *c, size_t n);
/// Negated dot product of float32 `q` and float16 `c`, `n` elements each. AVX-512 or AVX2/F16C when present.
float hs_negdot_f32_f16(const float *q, const uint16_t *c, size_t n);
float hs_negdot_f32_f16_at_level(int level, const float *q, const uint16_t *c, size_t n);

/// A reader-writer lock that prefers writers (so a stream of searches cannot starve a resize).
typedef struct hs_rwlock hs_rwlock;
hs_rwlock *hs_rwlock_create(void);
void hs_rwlock_destroy(hs_rwlock *lock);
void hs_rwlock_read_lock(hs_rwlock *lock);
void hs_rwlock_read_unlock(hs_rwlock *lock);
void hs_rwlock_write_lock(hs_rwlock *lock);
void hs_rwlock_write_unlock(hs_rwlock *lock);

/// Hint the CPU to bring the cache line at `p` closer. Never faults.
static inline void hs_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
/// Tells the CPU this thread is spinning on a flag (x86 `pause`): the other hardware thread of its core gets its
/// resources meanwhile. A no-op elsewhere.
static inline void hs_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Acquire load / release store of a 32-bit word shared between threads (plain moves on x86).
static inline uint32_t hs_load_acquire_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void hs_store_release_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint8_t hs_load_acquire_u8(const uint8_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void hs_store_release_u8(uint8_t *p, uint8_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/// Takes a POSIX write lock on the whole file behind `fd` without waiting: 0 on success, else errno
/// (EAGAIN/EACCES when another process holds it). Process-owned, so a child that inherits the descriptor
/// between fork and exec does not hold it (unlike flock).
int hs_lock_file(int fd);
/// The same, shared (F_RDLCK, `shared` != 0: many readers, no writer; `fd` open for reading) or exclusive.
int hs_lock_file_as(int fd, int shared);

/// Spin lock on one byte (0 = free). Short critical sections only: a node's link list.
void hs_spin_wait(uint8_t *lock);
static inline void hs_spin_lock(uint8_t *lock) {
    if (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) != 0) { hs_spin_wait(lock); }
}
static inline void hs_spin_unlock(uint8_t *lock) { __atomic_store_n(lock, 0, __ATOMIC_RELEASE); }

#ifdef __cplusplus
}
#endif

#endif
