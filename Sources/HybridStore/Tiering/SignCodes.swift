import CKernels
import Foundation
import HNSW

/// 1- or 2-bit codes of cold rows, with the RaBitQ distance estimator and its error bound (Gao & Long, "RaBitQ:
/// Quantizing High-Dimensional Vectors with a Theoretical Error Bound for Approximate Nearest Neighbor Search",
/// SIGMOD 2024; two bits a component as in its extension, Gao et al., "Practical and Asymptotically Optimal
/// Quantization of High-Dimensional Vectors in Euclidean Space", SIGMOD 2025). They let the cold step rank
/// every matching cold row from RAM and open only the blocks that hold a row which can still be among the k
/// nearest, instead of opening a block per matching row.
///
/// A row x of a block with centroid c is coded by its residual r = x − c turned by a fixed random orthogonal
/// map P: o = P·r. The code is a vector v of P's padded space with components ±1 and ±3: the sign of each
/// component of o, 3 for the `large` components of largest magnitude, 1 for the others (two bit planes:
/// v = 4·hi + 2·lo − 3 per component); or, in spaces over 256 components, the signs alone (one plane,
/// v = 2·hi − 1, `large` = 0). With x̄ = v/‖v‖ (‖v‖ is the same for every row: every code has `large`
/// threes) and f = ⟨x̄, ô⟩, how well x̄ lines up with ô = o/‖o‖, for a query vector y in the same turned space
/// ⟨ô, y⟩ ≈ ⟨x̄, y⟩ / f, unbiased, and the error is at most ‖y‖ · √(1 − f²)/f · ε₀/√(D − 1) with a probability
/// that grows like a normal variable's within ε₀ σ: the bound holds for any x̄ that depends on ô alone, so the
/// second bit only narrows it, through f (~0.94 against ~0.80 for signs alone: √(1 − f²)/f ~0.36 against
/// ~0.75). Measured: ~94 % within the paper's ε₀ = 1.9, > 99 % within ε₀ = 3 (`SignCodesTests`). The threes
/// go to the 32 % largest components, the best split for normally distributed components (their share of
/// ⟨v, |o|⟩ against ‖v‖ peaks there, and is flat around it). Why one bit above 256: the bound also shrinks as
/// 1/√(D − 1), so at 384-d (D = 512) signs alone open about as few blocks, and a second plane doubled the
/// ranking of thousands of rows an unfiltered query does for no gain; at 128-d it halves the blocks a
/// selective filter opens. (Measured: Benchmarks/README.md, "Measurements behind constants", `SignCodes`.)
///
/// P is three rounds of random sign flips each followed by a normalised Walsh–Hadamard transform, over the
/// dimensions zero-padded to a power of two D ≥ 64: O(D log D) a vector, and the same map on every open (the
/// signs come from a fixed seed), so codes are derived state, recomputed from the blocks when a store opens.
package struct SignCodes: Sendable {
    package let dimensions: Int
    /// D: a power of two, at least `dimensions` and 64.
    package let padded: Int
    /// 64-bit words a code takes: the high bit plane, then the low one.
    package var words: Int { planes * planeWords }
    /// Bit planes a code has: 2 for D ≤ 256, else 1.
    package let planes: Int
    /// 64-bit words of one bit plane.
    package var planeWords: Int { padded / 64 }
    /// Components coded ±3 in every code.
    package let large: Int
    /// Three rounds of D signs (±1).
    private let signs: [Float]
    /// 1/‖v‖ = 1/√(D + 8·large), and 1/√(D − 1).
    private let inverseNorm: Float, errorScale: Float

    package init(dimensions: Int) {
        precondition(dimensions > 0)
        self.dimensions = dimensions
        var d = 64
        while d < dimensions { d *= 2 }
        padded = d
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(d)
        func next() -> UInt64 {  // SplitMix64: fixed, so every open derives the same map
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        signs = (0..<3 * d).map { _ in next() & 1 == 0 ? 1 : -1 }
        planes = d <= 256 ? 2 : 1
        large = planes == 2 ? Int((Double(d) * 0.32).rounded()) : 0
        inverseNorm = 1 / Float(d + 8 * large).squareRoot()
        errorScale = 1 / Float(d - 1).squareRoot()
    }

    /// out = P·x, x zero-padded: `x` holds `dimensions` floats, `out` `padded` floats. Preserves norms and
    /// inner products.
    /// - Complexity: O(D log D).
    package func rotate(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let d = padded
        unsafe out.update(from: x, count: dimensions)
        unsafe (out + dimensions).update(repeating: 0, count: d - dimensions)
        let scale = 1 / Float(d).squareRoot()
        unsafe signs.withUnsafeBufferPointer { s in
            for round in 0..<3 {
                for i in 0..<d { unsafe out[i] *= s[round * d + i] }
                unsafe hs_fwht_f32(out, d)
                for i in 0..<d { unsafe out[i] *= scale }
            }
        }
    }

    /// What a code keeps besides its bits.
    package struct Factors: Equatable {
        /// ‖x − c‖.
        package var norm: Float
        /// 1 / ⟨x̄, ô⟩ (1 when x = c).
        package var inverseAlignment: Float
        /// ⟨v, P·c⟩ = ‖v‖ · ⟨x̄, P·c⟩: lets a query use P·q alone instead of P·(q − c).
        package var centroidTerm: Float
    }

    /// Codes `x` against a centroid already turned (`rotatedCentroid` = P·c, `padded` floats): writes
    /// `words` words of bits and returns the factors. `scratch` must hold `padded` floats.
    package func encode(
        _ x: UnsafePointer<Float>, rotatedCentroid rc: UnsafePointer<Float>,
        bits: UnsafeMutablePointer<UInt64>, scratch o: UnsafeMutablePointer<Float>
    ) -> Factors {
        unsafe rotate(x, into: o)
        let d = padded, w = planeWords
        // The residual (in double: the difference of two floats is exact there), and the `large` components of
        // largest magnitude (ties: the lower index).
        var norm2: Double = 0
        let residual = unsafe [Double](unsafeUninitializedCapacity: d) { r, count in
            for i in 0..<d {
                unsafe r[i] = unsafe Double(o[i]) - Double(rc[i])
                unsafe norm2 += r[i] * r[i]
            }
            count = d
        }
        var threshold = Double.infinity  // the large-th largest magnitude
        var tiesLeft = 0  // threes among the magnitudes equal to it
        if large > 0 {
            var magnitudes = residual.map { abs($0) }
            magnitudes.sort()
            threshold = magnitudes[d - large]
            tiesLeft = large - (d - (magnitudes.firstIndex { $0 > threshold } ?? d))
        }
        unsafe bits.update(repeating: 0, count: planes * w)
        var aligned: Double = 0, centroidTerm: Double = 0
        for i in 0..<d {
            let magnitude = abs(residual[i])
            var three = magnitude > threshold
            if magnitude == threshold && tiesLeft > 0 {
                three = true
                tiesLeft -= 1
            }
            // v = 4·hi + 2·lo − 3: −3 (0, 0), −1 (0, 1), 1 (1, 0), 3 (1, 1).
            let positive = residual[i] > 0
            let v: Double = (positive ? 1 : -1) * (three ? 3 : 1)
            if positive { unsafe bits[i >> 6] |= 1 << UInt64(i & 63) }
            if planes == 2 && positive == three { unsafe bits[w + i >> 6] |= 1 << UInt64(i & 63) }
            aligned += v * residual[i]
            unsafe centroidTerm += v * Double(rc[i])
        }
        let norm = norm2.squareRoot()
        let alignment = norm > 0 ? aligned / (Double(d + 8 * large).squareRoot() * norm) : 1
        return Factors(
            norm: Float(norm), inverseAlignment: Float(1 / max(alignment, 1e-6)),
            centroidTerm: Float(centroidTerm))
    }

    /// ⟨ô, y⟩ estimated for a code, with y given as P·q (`rotatedQuery`, its element sum `querySum`) minus
    /// P·c when `centred` (the code's `centroidTerm` takes care of c); and the bound on the error per unit of
    /// ‖y‖ (multiply by ‖y‖ and ε₀).
    @inline(__always)
    package func estimate(
        _ bits: UnsafePointer<UInt64>, _ factors: Factors, rotatedQuery: UnsafePointer<Float>,
        querySum: Float, centred: Bool
    ) -> (innerProduct: Float, errorPerNorm: Float) {
        let w = planeWords
        let high = unsafe hs_masked_sum_f32(rotatedQuery, bits, w)
        // ⟨v, y⟩: v = 4·hi + 2·lo − 3 (two planes) or 2·hi − 1 (one).
        let vy =
            unsafe planes == 2
            ? 4 * high + 2 * hs_masked_sum_f32(rotatedQuery, bits + w, w) - 3 * querySum
            : 2 * high - querySum
        let signed = (vy - (centred ? factors.centroidTerm : 0)) * inverseNorm
        let f = factors.inverseAlignment
        return (signed * f, (max(f * f - 1, 0)).squareRoot() * errorScale)
    }
}
