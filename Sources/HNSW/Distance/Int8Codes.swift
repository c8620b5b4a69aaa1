import CKernels

/// How a search walks the graph.
public enum TraversalPrecision: String, Sendable, Codable, CaseIterable {
    /// Every distance in float32 (4 bytes a component read per visited node).
    case float32
    /// Distances on per-vector int8 codes (a quarter of the bytes, so fewer cache misses per visited node);
    /// the final candidates are re-scored in float32, so returned distances are exact.
    case int8
}

/// Symmetric per-vector int8 quantisation: `codes[i] = round(vector[i] / scale)` with
/// `scale = max |vector[i]| / 127`, so `vector[i] ≈ scale · codes[i]` within `scale / 2`. Needs no training,
/// so a node is encoded when it is placed. Returns the scale (0 for a zero vector, whose codes are all 0).
/// - Precondition: `vector` valid for `count` reads, `codes` for `count` writes; components finite.
/// - Complexity: O(count).
package func encodeInt8(_ vector: UnsafePointer<Float>, count: Int, into codes: UnsafeMutablePointer<Int8>) -> Float {
    var peak: Float = 0
    for i in 0..<count { peak = unsafe max(peak, abs(vector[i])) }
    guard peak > 0 else {
        unsafe codes.update(repeating: 0, count: count)
        return 0
    }
    // In Double: for a subnormal peak, 127 / peak overflows Float (and 0 × ∞ would be NaN).
    let inverse = 127 / Double(peak)
    for i in 0..<count {
        unsafe codes[i] = unsafe Int8(min(max((Double(vector[i]) * inverse).rounded(), -127), 127))
    }
    return peak / 127  // may round to 0 for a subnormal peak: the codes then decode to 0, still a valid bound
}

/// `Σ q[i] · c[i]` over `count` elements, portable SIMD. - Complexity: O(count), no allocation.
/// - Precondition: `q` and `c` valid for `count` reads.
@inline(__always)
package func portableDotInt8(_ q: UnsafePointer<Float>, _ c: UnsafePointer<Int8>, _ count: Int) -> Float {
    var acc = SIMD16<Float>(), i = 0
    let rq = unsafe UnsafeRawPointer(q), rc = unsafe UnsafeRawPointer(c)
    // SAFETY: each load reads elements [i, i+16); the loop keeps i + 16 <= count.
    while i &+ 16 <= count {
        let codes = unsafe rc.loadUnaligned(fromByteOffset: i, as: SIMD16<Int8>.self)
        unsafe acc +=
            rq.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
            * SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: codes))
        i &+= 16
    }
    var sum = acc.sum()
    while i < count {
        unsafe sum += q[i] * Float(c[i])
        i &+= 1
    }
    return sum
}

/// `Σ (q[i] − scale · c[i])²` over `count` elements, portable SIMD. - Complexity: O(count), no allocation.
/// - Precondition: `q` and `c` valid for `count` reads.
@inline(__always)
package func portableL2SquaredInt8(
    _ q: UnsafePointer<Float>, _ c: UnsafePointer<Int8>, _ count: Int,
    scale: Float
) -> Float {
    var acc = SIMD16<Float>(), i = 0
    let rq = unsafe UnsafeRawPointer(q), rc = unsafe UnsafeRawPointer(c)
    // SAFETY: each load reads elements [i, i+16); the loop keeps i + 16 <= count.
    while i &+ 16 <= count {
        let codes = unsafe rc.loadUnaligned(fromByteOffset: i, as: SIMD16<Int8>.self)
        let d =
            unsafe rq.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
            - scale * SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: codes))
        acc += d * d
        i &+= 16
    }
    var sum = acc.sum()
    while i < count {
        let d = unsafe q[i] - scale * Float(c[i])
        sum += d * d
        i &+= 1
    }
    return sum
}

let portableL2SquaredInt8C: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Int8>?, Int, Float) -> Float = {
    q, c, n, scale in
    // SAFETY: the index only calls kernels with non-nil pointers valid for n elements.
    unsafe portableL2SquaredInt8(q.unsafelyUnwrapped, c.unsafelyUnwrapped, n, scale: scale)
}

let portableDotInt8C: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Int8>?, Int) -> Float = { q, c, n in
    // SAFETY: the index only calls kernels with non-nil pointers valid for n elements.
    unsafe portableDotInt8(q.unsafelyUnwrapped, c.unsafelyUnwrapped, n)
}

/// The float32 × int8 kernels for a level, clamped to what this machine supports.
// @safe: holds C function pointers; calling them takes pointers, which is marked `unsafe` where it happens.
@safe package struct CodeKernel: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): C function pointers to pure functions.
    package let dot: hs_code_dot_fn
    package let l2Squared: hs_code_l2_fn
    package let level: KernelLevel

    package init(level requested: KernelLevel = .best) {
        let level = min(requested, KernelLevel.best)
        self.level = level
        switch level {
        case .avx512: unsafe dot = unsafe hs_dot_f32_i8_avx512; unsafe l2Squared = unsafe hs_l2sq_f32_i8_avx512
        case .avx2: unsafe dot = unsafe hs_dot_f32_i8_avx2; unsafe l2Squared = unsafe hs_l2sq_f32_i8_avx2
        case .portable: unsafe dot = unsafe portableDotInt8C; unsafe l2Squared = unsafe portableL2SquaredInt8C
        }
    }
}
