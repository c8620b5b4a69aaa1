/// Why a vector cannot be stored or searched with. Every entry point (index inserts and searches, the
/// store's writes and queries) runs the one check, `vectorProblem(_:metric:)`.
package enum VectorProblem: Equatable, Sendable {
    /// A component is NaN or infinite.
    case nonFinite(component: Int, value: Float)
    /// The squared norm exceeds `maximumSquaredNorm`: a distance to it could overflow Float.
    case normTooLarge(squaredNorm: Double)
    /// Cosine: the norm is zero or its square subnormal, so the vector has no direction to compare.
    case noDirection(squaredNorm: Double)

    /// What is wrong, e.g. "component 3 is nan".
    package var message: String {
        switch self {
        case .nonFinite(let i, let v): "component \(i) is \(v)"
        case .normTooLarge(let n):
            "its squared norm \(n) exceeds \(maximumSquaredNorm) (a quarter of Float's range, so that every distance stays finite)"
        case .noDirection(let n):
            n == 0
                ? "it is all zeros, which has no direction under cosine"
                : "its norm is too small (squared \(n)) to have a direction under cosine"
        }
    }
}

/// The largest squared norm a vector may have: a quarter of Float's range. Then for any two accepted vectors
/// `‖a − b‖² ≤ (‖a‖ + ‖b‖)² ≤ 4 · max ≤ Float.greatestFiniteMagnitude` and `|a·b| ≤ ‖a‖‖b‖ ≤ max`, so
/// every distance of every metric is finite.
package let maximumSquaredNorm = Double(Float.greatestFiniteMagnitude) / 4

/// The first problem of `vector` under `metric`, or nil when it can be stored and searched with.
/// - Complexity: O(count), in Double (a Float sum would itself overflow).
package func vectorProblem(_ vector: UnsafeBufferPointer<Float>, metric: Metric) -> VectorProblem? {
    var squared = 0.0
    for unsafe(i, x) in unsafe vector.enumerated() {
        guard x.isFinite else { return .nonFinite(component: i, value: x) }
        squared += Double(x) * Double(x)
    }
    if squared > maximumSquaredNorm { return .normTooLarge(squaredNorm: squared) }
    if metric == .cosine && squared < Double(Float.leastNormalMagnitude) { return .noDirection(squaredNorm: squared) }
    return nil
}

/// `vectorProblem` of an array.
package func vectorProblem(_ vector: [Float], metric: Metric) -> VectorProblem? {
    unsafe vector.withUnsafeBufferPointer { unsafe vectorProblem($0, metric: metric) }
}
