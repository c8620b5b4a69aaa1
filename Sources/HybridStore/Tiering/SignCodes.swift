import CKernels
import Foundation

/// 1-bit codes of cold rows, with the RaBitQ distance estimator and its error bound (Gao & Long, "RaBitQ:
/// Quantizing High-Dimensional Vectors with a Theoretical Error Bound for Approximate Nearest Neighbor Search",
/// SIGMOD 2024). They let the cold step rank every matching cold row from RAM and open only the blocks that
/// hold a row which can still be among the k nearest, instead of opening a block per matching row.
///
/// A row x of a block with centroid c is coded by its residual r = x − c turned by a fixed random orthogonal
/// map P: o = P·r. The code keeps the signs of o (one bit per component of P's padded space), ‖r‖, and
/// f = ⟨x̄, ô⟩ (how well the sign vector x̄ = sign(o)/√D lines up with ô = o/‖o‖). For a query vector y in the
/// same turned space, ⟨ô, y⟩ ≈ ⟨x̄, y⟩ / f, unbiased, and the error is at most ‖y‖ · √(1 − f²)/f · ε₀/√(D − 1)
/// with a probability that grows like a normal variable's within ε₀ σ (measured: ~94 % at the paper's
/// ε₀ = 1.9, > 99 % at ε₀ = 3; `SignCodesTests`).
///
/// P is three rounds of random sign flips each followed by a normalised Walsh–Hadamard transform, over the
/// dimensions zero-padded to a power of two D ≥ 64: O(D log D) a vector, and the same map on every open (the
/// signs come from a fixed seed), so codes are derived state, recomputed from the blocks when a store opens.
package struct SignCodes: Sendable {
    package let dimensions: Int
    /// D: a power of two, at least `dimensions` and 64.
    package let padded: Int
    /// 64-bit words a code takes.
    package var words: Int { padded / 64 }
    /// Three rounds of D signs (±1).
    private let signs: [Float]
    /// 1/√D and 1/√(D − 1).
    private let inverseRoot: Float, errorScale: Float

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
        inverseRoot = 1 / Float(d).squareRoot()
        errorScale = 1 / Float(d - 1).squareRoot()
    }

    /// out = P·x, x zero-padded: `x` holds `dimensions` floats, `out` `padded` floats. Preserves norms and
    /// inner products.
    /// - Complexity: O(D log D).
    package func rotate(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let d = padded
        out.update(from: x, count: dimensions)
        (out + dimensions).update(repeating: 0, count: d - dimensions)
        let scale = 1 / Float(d).squareRoot()
        signs.withUnsafeBufferPointer { s in
            for round in 0..<3 {
                for i in 0..<d { out[i] *= s[round * d + i] }
                hs_fwht_f32(out, d)
                for i in 0..<d { out[i] *= scale }
            }
        }
    }

    /// What a code keeps besides its bits.
    package struct Factors: Equatable {
        /// ‖x − c‖.
        package var norm: Float
        /// 1 / ⟨x̄, ô⟩ (1 when x = c).
        package var inverseAlignment: Float
        /// √D · ⟨x̄, P·c⟩ = 2 Σ_{set bits} (P·c)ᵢ − Σ (P·c)ᵢ: lets a query use P·q alone instead of P·(q − c).
        package var centroidTerm: Float
    }

    /// Codes `x` against a centroid already turned (`rotatedCentroid` = P·c, `padded` floats): writes
    /// `words` words of bits and returns the factors. `scratch` must hold `padded` floats.
    package func encode(_ x: UnsafePointer<Float>, rotatedCentroid rc: UnsafePointer<Float>,
                        bits: UnsafeMutablePointer<UInt64>, scratch o: UnsafeMutablePointer<Float>) -> Factors {
        rotate(x, into: o)
        var norm2: Double = 0, absSum: Double = 0, centroidTerm: Double = 0
        bits.update(repeating: 0, count: words)
        for i in 0..<padded {
            let r = Double(o[i]) - Double(rc[i])
            norm2 += r * r
            absSum += abs(r)
            if r > 0 {
                bits[i >> 6] |= 1 << UInt64(i & 63)
                centroidTerm += Double(rc[i])
            } else {
                centroidTerm -= Double(rc[i])
            }
        }
        let norm = norm2.squareRoot()
        let alignment = norm > 0 ? absSum / (Double(padded).squareRoot() * norm) : 1
        return Factors(norm: Float(norm), inverseAlignment: Float(1 / max(alignment, 1e-6)),
                       centroidTerm: Float(centroidTerm))
    }

    /// ⟨ô, y⟩ estimated for a code, with y given as P·q (`rotatedQuery`, its element sum `querySum`) minus
    /// P·c when `centred` (the code's `centroidTerm` takes care of c); and the bound on the error per unit of
    /// ‖y‖ (multiply by ‖y‖ and ε₀).
    @inline(__always)
    package func estimate(_ bits: UnsafePointer<UInt64>, _ factors: Factors, rotatedQuery: UnsafePointer<Float>,
                          querySum: Float, centred: Bool) -> (innerProduct: Float, errorPerNorm: Float) {
        let m = hs_masked_sum_f32(rotatedQuery, bits, words)
        let signed = (2 * m - querySum - (centred ? factors.centroidTerm : 0)) * inverseRoot
        let f = factors.inverseAlignment
        return (signed * f, (max(f * f - 1, 0)).squareRoot() * errorScale)
    }
}
