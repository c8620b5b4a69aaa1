import CKernels
import Foundation
import Testing
import HNSW
import HybridStore

@Suite struct SignCodesTests {
    /// The masked sum at every level this CPU has (portable, AVX2, AVX-512) against a Double reference.
    @Test(arguments: 0...2, 1...9)
    func maskedSumMatchesReference(level: Int32, words: Int) {
        guard level <= hs_cpu_level() else { return }
        var rng = SplitMix64(seed: UInt64(words))
        for _ in 0..<50 {
            let q = (0..<words * 64).map { _ in Float.random(in: -10...10, using: &rng) }
            let bits = (0..<words).map { _ in rng.next() }
            var reference = 0.0
            for i in 0..<words * 64 where bits[i / 64] >> UInt64(i % 64) & 1 == 1 { reference += Double(q[i]) }
            #expect(abs(Double(hs_masked_sum_f32_at_level(level, q, bits, words)) - reference) <= 1e-3)
        }
        let ones = [Float](repeating: 1, count: 64 * words)
        #expect(
            hs_masked_sum_f32_at_level(level, ones, [UInt64](repeating: .max, count: words), words) == Float(64 * words)
        )
        #expect(hs_masked_sum_f32_at_level(level, ones, [UInt64](repeating: 0, count: words), words) == 0)
        // One bit at a time finds its own element (each of the 64 positions of a word).
        let positions = (0..<words * 64).map(Float.init)
        for i in stride(from: 0, to: words * 64, by: 7) {
            var single = [UInt64](repeating: 0, count: words)
            single[i / 64] = 1 << UInt64(i % 64)
            #expect(hs_masked_sum_f32_at_level(level, positions, single, words) == Float(i), "bit \(i)")
        }
    }

    /// The Walsh–Hadamard transform at every level this CPU has is the Hadamard matrix times the vector (±1
    /// entries: the sign of (−1)^popcount(i & j)), and gives the portable loop's bits exactly, n = 1 … 1024.
    @Test(arguments: 0...2)
    func walshHadamardIsTheHadamardMatrix(level: Int32) {
        guard level <= hs_cpu_level() else { return }
        var rng = SplitMix64(seed: 31)
        for log in 0...10 {
            let n = 1 << log
            let x = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
            var fast = x, portable = x
            hs_fwht_f32_at_level(level, &fast, n)
            hs_fwht_f32_portable(&portable, n)
            #expect(fast == portable, "n \(n)")
            for i in [0, n / 3, n - 1] {
                var reference = 0.0
                for j in 0..<n { reference += ((i & j).nonzeroBitCount % 2 == 0 ? 1 : -1) * Double(x[j]) }
                #expect(abs(Double(fast[i]) - reference) <= 1e-4 * Double(n), "n \(n) row \(i)")
            }
        }
    }

    /// The float32 × float16 centroid kernels at every level this CPU has (with a scalar tail) against a
    /// Double reference, at lengths around the 8- and 16-lane widths.
    @Test(arguments: 0...2)
    func float16CentroidKernelsMatchReference(level: Int32) {
        guard level <= hs_cpu_level() else { return }
        var rng = SplitMix64(seed: 12)
        for n in Array(1...40) + [127, 128, 384] {
            let q = (0..<n).map { _ in Float.random(in: -3...3, using: &rng) }
            let c = (0..<n).map { _ in Float16(Float.random(in: -3...3, using: &rng)) }
            let bits = c.map(\.bitPattern)
            var l2 = 0.0, dot = 0.0
            for i in 0..<n {
                let d = Double(q[i]) - Double(Float(c[i]))
                l2 += d * d
                dot += Double(q[i]) * Double(Float(c[i]))
            }
            #expect(abs(Double(hs_l2sq_f32_f16_at_level(level, q, bits, n)) - l2) <= 1e-4 * max(1, l2), "n \(n)")
            #expect(
                abs(Double(hs_negdot_f32_f16_at_level(level, q, bits, n)) + dot) <= 1e-4 * max(1, abs(dot)), "n \(n)")
        }
    }

    /// P is orthogonal (norms and inner products kept, padding included) and the same map on every instance.
    @Test(arguments: [1, 5, 64, 100, 384])
    func rotationKeepsGeometryAndIsFixed(dimensions: Int) {
        let a = SignCodes(dimensions: dimensions), b = SignCodes(dimensions: dimensions)
        #expect(a.padded >= max(64, dimensions) && a.padded & (a.padded - 1) == 0)
        var rng = SplitMix64(seed: 9)
        for _ in 0..<20 {
            let x = (0..<dimensions).map { _ in Float.random(in: -1...1, using: &rng) }
            let y = (0..<dimensions).map { _ in Float.random(in: -1...1, using: &rng) }
            var px = [Float](repeating: .nan, count: a.padded), py = px, px2 = px
            a.rotate(x, into: &px)
            a.rotate(y, into: &py)
            b.rotate(x, into: &px2)
            #expect(px == px2)
            func dot(_ u: [Float], _ v: [Float]) -> Double { zip(u, v).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
            #expect(abs(dot(px, px) - dot(x, x)) <= 1e-4 * max(1, dot(x, x)))
            #expect(abs(dot(px, py) - dot(x, y)) <= 1e-4 * Double(dimensions))
        }
        if dimensions >= 64 {  // a different width is a different map
            var p1 = [Float](repeating: 0, count: a.padded)
            let e = [Float](repeating: 1, count: dimensions)
            a.rotate(e, into: &p1)
            #expect(Set(p1.map { abs($0) }).count > 1, "not a plain scaling")
        }
    }

    /// The estimate of ⟨ô, y⟩ (with and without the centroid folded in) errs like a normal variable whose σ is
    /// the bound per unit of ε₀: ~6 % of codes fall outside ε₀ = 1.9, under 1 % outside ε₀ = 3; the mean error
    /// is well inside; the codes line up with their rows as one or two bits should; a row equal to its
    /// centroid is exact.
    @Test(arguments: [24, 128, 300])
    func estimatesFallWithinTheirBound(dimensions: Int) {
        let codes = SignCodes(dimensions: dimensions)
        var rng = SplitMix64(seed: UInt64(dimensions))
        let centroid = (0..<dimensions).map { _ in Float.random(in: -1...1, using: &rng) }
        var rc = [Float](repeating: 0, count: codes.padded), scratch = rc, pq = rc
        codes.rotate(centroid, into: &rc)
        var outside = 0, farOutside = 0, errors = 0.0, bounds = 0.0, alignments = 0.0
        let trials = 1000
        for t in 0..<trials {
            let x = centroid.map { $0 + Float.random(in: -0.3...0.3, using: &rng) }
            let q = (0..<dimensions).map { _ in Float.random(in: -1...1, using: &rng) }
            var bits = [UInt64](repeating: 0, count: codes.words)
            let f = codes.encode(x, rotatedCentroid: rc, bits: &bits, scratch: &scratch)
            // Every two-plane code has exactly `large` components ±3 (hi == lo), the norm the estimate assumes.
            if codes.planes == 2 {
                let w = codes.padded / 64
                let threes = (0..<w).reduce(0) { $0 + (~(bits[$1] ^ bits[w + $1])).nonzeroBitCount }
                #expect(threes == codes.large)
            }
            codes.rotate(q, into: &pq)
            let centred = t % 2 == 0
            // y = P·(q − c) when centred, else P·q; the truth is ⟨x − c, y⟩ / ‖x − c‖.
            let y = centred ? zip(q, centroid).map { $0 - $1 } : q
            let r = zip(x, centroid).map { $0 - $1 }
            let norm = r.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(Double(f.norm) - norm) <= 1e-4 * norm)
            alignments += 1 / Double(f.inverseAlignment)
            let truth = zip(r, y).reduce(0) { $0 + Double($1.0) * Double($1.1) } / norm
            let (estimate, errorPerNorm) = codes.estimate(
                bits, f, rotatedQuery: pq, querySum: pq.reduce(0, +), centred: centred)
            let yNorm = y.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            let bound = Double(errorPerNorm) * yNorm * 1.9
            if abs(Double(estimate) - truth) > bound { outside += 1 }
            if abs(Double(estimate) - truth) > bound * 3 / 1.9 { farOutside += 1 }
            errors += abs(Double(estimate) - truth)
            bounds += bound
        }
        #expect(outside <= trials / 10, "\(outside) of \(trials) estimates outside ε₀ = 1.9")
        #expect(farOutside <= trials / 100, "\(farOutside) of \(trials) estimates outside ε₀ = 3")
        #expect(errors < bounds / 2)
        // Two bits a component (D ≤ 256): x̄ lines up with ô at ~0.94, which halves the bound; signs alone ~0.80.
        #expect(codes.planes == (codes.padded <= 256 ? 2 : 1) && codes.words == codes.planes * codes.padded / 64)
        #expect(
            alignments / Double(trials) > (codes.planes == 2 ? 0.92 : 0.77),
            "mean alignment \(alignments / Double(trials))")
        var bits = [UInt64](repeating: 0, count: codes.words)
        let same = codes.encode(centroid, rotatedCentroid: rc, bits: &bits, scratch: &scratch)
        #expect(same.norm <= 1e-5 && same.inverseAlignment >= 1)
    }
}

@Suite struct CodeRankedColdStepTests {
    /// A selective filter over an all-cold collection: the cold step ranks the matching rows by code (the
    /// explanation says how many), opens fewer blocks than hold a match, and finds the true k nearest of
    /// nearly every query, for each metric (inner product uses the uncentred estimate).
    @Test(arguments: [Metric.l2, .cosine, .innerProduct])
    func selectiveFiltersRankColdRowsByCode(metric: Metric) throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let dim = 32
        let c = try store.createCollection(
            "s",
            schema: Schema(
                vector: VectorSpec(dimensions: dim, metric: metric), id: .integer,
                columns: [.integer("g", filterable: true)]))
        // Clustered rows (40 centres), as embeddings are; g = 0 for one row in 60.
        var rng = SplitMix64(seed: 77)
        let centres = (0..<40).map { _ in (0..<dim).map { _ in Float.random(in: -1...1, using: &rng) } }
        let vectors = (0..<12_000).map { i in centres[i % 40].map { $0 + Float.random(in: -0.25...0.25, using: &rng) } }
        try store.write { tx in
            for (i, v) in vectors.enumerated() {
                try tx.insert(.int(Int64(i)), into: c, vector: v, values: ["g": .integer(Int64(i % 60))])
            }
        }
        try store.tier(c, to: .cold)
        let blocks = try store.statistics(c).coldBlocks
        func distance(_ a: [Float], _ b: [Float]) -> Float {
            let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            switch metric {
            case .l2: return l2(a, b)
            case .innerProduct: return -dot
            case .cosine:
                return 1 - dot / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
            }
        }
        let matching = vectors.indices.filter { $0 % 60 == 0 }
        var found = 0, wanted = 0
        for t in 0..<30 {
            let q = centres[(t * 7) % 40].map { $0 + Float.random(in: -0.3...0.3, using: &rng) }
            let answer = try store.query(
                c, near: q, k: 10, where: try store.parseFilter("g = 0"), options: QueryOptions())
            let (hits, e) = (answer.hits, answer.explanation)
            #expect(e.coldRowsRanked == matching.count)
            #expect(e.coldBlocksProbed >= 1 && e.coldBlocksProbed < min(matching.count, blocks))
            let truth = Set(
                matching.sorted { (distance(vectors[$0], q), $0) < (distance(vectors[$1], q), $1) }.prefix(10)
                    .map { RowID.int(Int64($0)) })
            found += hits.filter { truth.contains($0.id) }.count
            wanted += 10
            // Distances are exact (scored from the block), not estimates.
            for hit in hits {
                guard case .int(let i) = hit.id else { continue }
                #expect(abs(hit.distance - distance(vectors[Int(i)], q)) <= 1e-4 * max(1, abs(hit.distance)))
            }
        }
        #expect(Double(found) >= 0.97 * Double(wanted), "recall \(Double(found) / Double(wanted))")
    }

    /// Components far beyond float16's range (the block centroids are float16): the exact step still equals
    /// brute force, and the default step finds the true nearest.
    @Test func hugeComponentsKeepBoundsValid() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.createCollection(
            "h",
            schema: Schema(
                vector: VectorSpec(dimensions: 8), id: .integer,
                columns: [.integer("g", filterable: true)]))
        let vectors = randomVectors(3000, dim: 8, seed: 5).map { $0.map { $0 * 1e6 } }
        try store.write { tx in
            for (i, v) in vectors.enumerated() {
                try tx.insert(.int(Int64(i)), into: c, vector: v, values: ["g": .integer(Int64(i % 50))])
            }
        }
        try store.tier(c, to: .cold)
        var rng = SplitMix64(seed: 6)
        for _ in 0..<10 {
            let q = vectors[Int.random(in: 0..<3000, using: &rng)].map { $0 + 3 }
            let exact = try store.query(
                c, near: q, k: 5, where: try store.parseFilter("g < 25"), options: QueryOptions(coldProbes: .max)
            ).hits
            let truth = vectors.indices.filter { $0 % 50 < 25 }.sorted {
                (l2(vectors[$0], q), $0) < (l2(vectors[$1], q), $1)
            }.prefix(5)
            #expect(exact.map(\.id) == truth.map { .int(Int64($0)) })
            let answer = try store.query(
                c, near: q, k: 5, where: try store.parseFilter("g = 3"), options: QueryOptions())
            let (approximate, e) = (answer.hits, answer.explanation)
            let nearest = vectors.indices.filter { $0 % 50 == 3 }.sorted {
                (l2(vectors[$0], q), $0) < (l2(vectors[$1], q), $1)
            }.prefix(5)
            #expect(Set(approximate.map(\.id)).intersection(nearest.map { .int(Int64($0)) }).count >= 4)
            #expect(e.coldRowsRanked == 60 && e.coldBlocksProbed >= 1)
            // Unfiltered, blocks are chosen by centroid, then their rows by code: explain tells the two apart.
            let unfiltered = try store.query(c, near: q, k: 5, where: nil, options: QueryOptions()).explanation
            #expect(unfiltered.coldRowsRanked == 0 && unfiltered.coldRowsReranked > 0)
            #expect(
                unfiltered.description.contains(
                    "chosen by centroid, then by the codes of their \(unfiltered.coldRowsReranked) rows"))
        }
    }
}
