import CKernels

/// How two vectors are compared. Reported distances follow the benchmark format (FORMAT.md):
/// squared L2 for `.l2`, `1 - cos` for `.cosine`, `-dot` for `.innerProduct`. Smaller is nearer.
public enum Metric: String, Sendable, Codable, CaseIterable {
    /// Squared Euclidean distance.
    case l2
    /// Cosine distance `1 - cos(a, b)`; vectors are stored normalised.
    case cosine
    /// Negated inner product `-a·b` (maximum inner product search).
    case innerProduct = "ip"

    var code: UInt8 {
        switch self {
        case .l2: 0
        case .cosine: 1
        case .innerProduct: 2
        }
    }

    init?(code: UInt8) {
        switch code {
        case 0: self = .l2
        case 1: self = .cosine
        case 2: self = .innerProduct
        default: return nil
        }
    }

    /// The internal ranking distance is `l2Squared` or `-dot`; this adds what turns it into the reported one.
    @inline(__always) func reported(_ internalDistance: Float) -> Float {
        self == .cosine ? 1 + internalDistance : internalDistance
    }
}

/// The instruction set a kernel uses. Chosen once per index from what the CPU and OS support.
public enum KernelLevel: Int, Sendable, Comparable, CustomStringConvertible {
    case portable = 0, avx2 = 1, avx512 = 2

    /// The best level this machine supports.
    public static let best: KernelLevel = KernelLevel(rawValue: Int(hs_cpu_level())) ?? .portable

    public static func < (a: KernelLevel, b: KernelLevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .portable: "portable-simd"
        case .avx2: "avx2+fma"
        case .avx512: "avx512f"
        }
    }
}

/// A distance kernel resolved once: a C function pointer with no per-call dispatch.
// @safe: holds a C function pointer; calling it takes pointers, which is marked `unsafe` where it happens.
@safe package struct DistanceKernel: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): a C function pointer to a pure function; it has no state to share.
    package let function: hs_distance_fn
    package let level: KernelLevel

    /// The kernel computing the internal ranking distance of `metric` (`l2Squared`, or `-dot` for cosine and
    /// inner product) at `level`, clamped to what this machine supports.
    package init(metric: Metric, level requested: KernelLevel = .best) {
        let level = min(requested, KernelLevel.best)
        self.level = level
        switch (metric, level) {
        case (.l2, .avx512): unsafe function = unsafe hs_l2sq_avx512
        case (.l2, .avx2): unsafe function = unsafe hs_l2sq_avx2
        case (.l2, .portable): unsafe function = unsafe portableL2SquaredC
        case (_, .avx512): unsafe function = unsafe hs_negdot_avx512
        case (_, .avx2): unsafe function = unsafe hs_negdot_avx2
        case (_, .portable): unsafe function = unsafe portableNegativeDotC
        }
    }

    /// - Precondition: both pointers valid for `count` floats.
    @inline(__always) package func callAsFunction(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ count: Int
    ) -> Float {
        unsafe function(a, b, count)
    }
}
