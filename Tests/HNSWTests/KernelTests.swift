import CKernels
import Testing
import HNSW

@Suite struct KernelTests {
    static let dimensions = Array(0...40) + [384, 768, 1536]

    static var levels: [KernelLevel] {
        [.portable, .avx2, .avx512].filter { $0 <= KernelLevel.best }
    }

    @Test(arguments: dimensions)
    func fastKernelsMatchReference(dim: Int) {
        var rng = SplitMix64(seed: UInt64(dim) + 1)
        let a = (0..<dim).map { _ in Float.random(in: -2...2, using: &rng) }
        let b = (0..<dim).map { _ in Float.random(in: -2...2, using: &rng) }
        let l2 = referenceL2Squared(a, b)
        let dot = referenceNegativeDot(a, b)
        // Scale of the dot product's terms: relative error is measured against it, not the (cancelling) sum.
        let dotScale = zip(a, b).reduce(Float(0)) { $0 + abs($1.0 * $1.1) }
        for level in Self.levels {
            let l2Kernel = DistanceKernel(metric: .l2, level: level)
            let dotKernel = DistanceKernel(metric: .innerProduct, level: level)
            #expect(l2Kernel.level == level)
            // One float of padding: an empty array's base address may be nil, and kernels are never called on
            // nil; they read only `dim` floats. (No pointer leaves the closures that lend it.)
            (a + [0]).withUnsafeBufferPointer { pa in
                (b + [0]).withUnsafeBufferPointer { pb in
                    let x = pa.baseAddress!, y = pb.baseAddress!
                    let gotL2 = l2Kernel(x, y, dim)
                    let gotDot = dotKernel(x, y, dim)
                    #expect(abs(gotL2 - l2) <= 1e-5 * max(l2, 1), "l2 \(level) dim \(dim): \(gotL2) vs \(l2)")
                    #expect(
                        abs(gotDot - dot) <= 1e-5 * max(dotScale, 1), "dot \(level) dim \(dim): \(gotDot) vs \(dot)")
                }
            }
        }
    }

    @Test(arguments: dimensions)
    func int8DotKernelsMatchReference(dim: Int) {
        var rng = SplitMix64(seed: UInt64(dim) + 77)
        let q = (0..<dim).map { _ in Float.random(in: -2...2, using: &rng) }
        let c = (0..<dim).map { _ in Int8.random(in: -127...127, using: &rng) }
        var reference = 0.0, scale = 0.0, l2 = 0.0
        for i in 0..<dim {
            let d = Double(q[i]) - 0.03 * Double(c[i])
            l2 += d * d
            reference += Double(q[i]) * Double(c[i])
            scale += abs(Double(q[i]) * Double(c[i]))
        }
        for level in Self.levels {
            let kernel = CodeKernel(level: level)
            #expect(kernel.level == level)
            (q + [0]).withUnsafeBufferPointer { pq in
                (c + [0]).withUnsafeBufferPointer { pc in
                    let x = pq.baseAddress!, y = pc.baseAddress!
                    let got = Double(kernel.dot(x, y, dim))
                    #expect(
                        abs(got - reference) <= 1e-5 * max(scale, 1),
                        "int8 dot \(level) dim \(dim): \(got) vs \(reference)")
                    let gotL2 = Double(kernel.l2Squared(x, y, dim, 0.03))
                    #expect(abs(gotL2 - l2) <= 1e-5 * max(l2, 1), "int8 l2 \(level) dim \(dim): \(gotL2) vs \(l2)")
                }
            }
        }
    }

    /// Each component decodes to within half a step; the largest magnitude maps to ±127; zero stays zero.
    @Test(arguments: [1, 7, 128, 385])
    func int8CodesDecodeWithinHalfAStep(dim: Int) {
        var rng = SplitMix64(seed: UInt64(dim))
        var v = (0..<dim).map { _ in Float.random(in: -3...3, using: &rng) }
        v[dim / 2] = -7.5
        var codes = [Int8](repeating: 99, count: dim)
        let scale = v.withUnsafeBufferPointer { pv in
            codes.withUnsafeMutableBufferPointer { encodeInt8(pv.baseAddress!, count: dim, into: $0.baseAddress!) }
        }
        #expect(abs(scale - 7.5 / 127) <= 1e-6)
        #expect(codes[dim / 2] == -127)
        for i in 0..<dim {
            #expect(abs(v[i] - scale * Float(codes[i])) <= scale / 2 * 1.0001, "component \(i)")
        }
        let zero = [Float](repeating: 0, count: dim)
        let zeroScale = zero.withUnsafeBufferPointer { pz in
            codes.withUnsafeMutableBufferPointer { encodeInt8(pz.baseAddress!, count: dim, into: $0.baseAddress!) }
        }
        #expect(zeroScale == 0 && codes.allSatisfy { $0 == 0 })
        // Extremes encode without trapping: a subnormal peak (127 / peak overflows Float) and a huge one.
        for peak in [Float.leastNonzeroMagnitude, Float.leastNormalMagnitude, 3e38] {
            var extreme = [Float](repeating: 0, count: dim)
            extreme[0] = -peak
            let s = extreme.withUnsafeBufferPointer { pe in
                codes.withUnsafeMutableBufferPointer { encodeInt8(pe.baseAddress!, count: dim, into: $0.baseAddress!) }
            }
            #expect(codes[0] == -127 && codes.dropFirst().allSatisfy { $0 == 0 } && s.isFinite && s >= 0)
        }
    }

    @Test func bestLevelIsUsedByDefault() throws {
        let index = try HNSWIndex(parameters: HNSWParameters(dimensions: 8))
        #expect(index.kernelLevel == KernelLevel.best)
    }

    @Test func crc32cMatchesStandardCheckValue() {
        let bytes = Array("123456789".utf8)
        #expect(hs_crc32c(0, bytes, bytes.count) == 0xE306_9283)
        // Incremental use gives the same value as one call.
        let first = hs_crc32c(0, bytes, 4)
        let rest = bytes[4...].withUnsafeBufferPointer { hs_crc32c(first, $0.baseAddress, $0.count) }
        #expect(rest == 0xE306_9283)
    }

    /// Every hardware CRC path this CPU has — three crc32 streams joined through shift tables, carry-less
    /// folding of 4 × 512 bits — equals the table-driven one at every length around their block sizes (16, 64,
    /// 256 bytes; 3 × 256 and 3 × 4096), from odd offsets, continued.
    @Test func crc32cStreamsMatchTheTableDrivenReference() {
        var rng = SplitMix64(seed: 21)
        let data = (0..<40_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        data.withUnsafeBufferPointer { all in
            for length in [
                0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 257, 271, 319, 511, 512, 513, 767, 768, 769, 1536,
                5000, 7_171,
                12_287, 12_288, 12_289, 13_056, 28_000, 39_990,
            ] + Array(240...330) {
                for offset in [0, 3] {
                    let p = all.baseAddress! + offset
                    for level in 1...max(1, hs_crc32c_level()) {
                        #expect(
                            hs_crc32c_at_level(level, 0, p, length) == hs_crc32c_portable(0, p, length),
                            "level \(level) length \(length) offset \(offset)")
                        #expect(
                            hs_crc32c_at_level(level, 0x1234_5678, p, length)
                                == hs_crc32c_portable(0x1234_5678, p, length))
                    }
                }
            }
        }
    }

    /// The byte-plane unshuffle kernels, at every level this CPU has (portable, AVX2/F16C, AVX-512), against
    /// plain Swift: every float16 bit pattern (subnormals, infinities, NaNs included), and random float32 words,
    /// rotated or not, at lengths that leave a ragged tail.
    @Test(arguments: 0...2)
    func unshuffleKernelsMatchScalarSwift(level: Int32) {
        guard level <= hs_cpu_level() else { return }
        let count = 65_536
        let low = (0..<count).map { UInt8(truncatingIfNeeded: $0) },
            high = (0..<count).map { UInt8(truncatingIfNeeded: $0 >> 8) }
        var widened = [Float](repeating: 0, count: count)
        hs_unshuffle_f16_at_level(level, low, high, count, &widened)
        for i in 0..<count {
            let want = Float(Float16(bitPattern: UInt16(i)))
            #expect(widened[i].bitPattern == want.bitPattern || (want.isNaN && widened[i].isNaN), "float16 \(i)")
        }
        var rng = SplitMix64(seed: 5)
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 131, 384] {
            let words = (0..<n).map { _ in UInt32.random(in: 0...UInt32.max, using: &rng) }
            let planes = (0..<4).map { b in words.map { UInt8(truncatingIfNeeded: $0 >> (8 * b)) } }
            for rotated in [0, 1] {
                var out = [Float](repeating: 0, count: n)
                hs_unshuffle_f32_at_level(level, planes[0], planes[1], planes[2], planes[3], n, Int32(rotated), &out)
                #expect(out.map(\.bitPattern) == words.map { rotated == 1 ? $0 >> 1 | $0 << 31 : $0 }, "n \(n)")
            }
        }
    }

    @Test func normalizeGivesUnitLength() {
        var v: [Float] = [3, 4, 0]
        v.withUnsafeMutableBufferPointer { normalize($0) }
        #expect(abs(v[0] - 0.6) < 1e-6 && abs(v[1] - 0.8) < 1e-6)
        var zero: [Float] = [0, 0]
        zero.withUnsafeMutableBufferPointer { normalize($0) }
        #expect(zero == [0, 0])
    }
}
