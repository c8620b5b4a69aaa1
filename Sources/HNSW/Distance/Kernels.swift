import CKernels

// Portable SIMD kernels, used where the CPU has neither AVX2 nor AVX-512 (and on other architectures).
// The fast x86 kernels live in the CKernels target; `Kernels+Reference.swift` holds the scalar reference
// against which tests check all of them.

/// Squared Euclidean distance over `count` floats. - Complexity: O(count), no allocation.
/// - Precondition: `a` and `b` are valid for `count` reads.
@inline(__always)
package func portableL2Squared(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = SIMD16<Float>(), i = 0
    let ra = unsafe UnsafeRawPointer(a), rb = unsafe UnsafeRawPointer(b)
    // SAFETY: each load reads floats [i, i+16); the loop keeps i + 16 <= count.
    while i &+ 16 <= count {
        let d =
            unsafe ra.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
            - rb.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
        acc += d * d
        i &+= 16
    }
    var sum = acc.sum()
    while i < count {
        let d = unsafe a[i] - b[i]
        sum += d * d
        i &+= 1
    }
    return sum
}

/// Negated dot product `-a·b` over `count` floats. - Complexity: O(count), no allocation.
/// - Precondition: `a` and `b` are valid for `count` reads.
@inline(__always)
package func portableNegativeDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = SIMD16<Float>(), i = 0
    let ra = unsafe UnsafeRawPointer(a), rb = unsafe UnsafeRawPointer(b)
    // SAFETY: each load reads floats [i, i+16); the loop keeps i + 16 <= count.
    while i &+ 16 <= count {
        unsafe acc +=
            ra.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
            * rb.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
        i &+= 16
    }
    var sum = acc.sum()
    while i < count {
        unsafe sum += a[i] * b[i]
        i &+= 1
    }
    return -sum
}

/// C-callable wrappers so that all kernels share one function-pointer type.
let portableL2SquaredC: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Float = { a, b, n in
    // SAFETY: the index only calls kernels with non-nil pointers valid for n floats.
    unsafe portableL2Squared(a.unsafelyUnwrapped, b.unsafelyUnwrapped, n)
}
let portableNegativeDotC: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Float = { a, b, n in
    unsafe portableNegativeDot(a.unsafelyUnwrapped, b.unsafelyUnwrapped, n)
}

/// Scales `vector` to unit length in place; a zero vector is left as it is.
/// - Complexity: O(count).
package func normalize(_ vector: UnsafeMutableBufferPointer<Float>) {
    guard let base = vector.baseAddress, !vector.isEmpty else { return }
    let squared = unsafe -portableNegativeDot(base, base, vector.count)
    guard squared > 0, squared.isFinite else { return }
    let scale = 1 / squared.squareRoot()
    for i in vector.indices { unsafe vector[i] *= scale }
}

/// CRC-32C (Castagnoli) of `bytes`, continuing from `seed` (0 to start). Hardware-accelerated where the CPU
/// has SSE4.2. The checksum of snapshots and cold blocks.
package func crc32c(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
    unsafe hs_crc32c(seed, bytes.baseAddress, bytes.count)
}
