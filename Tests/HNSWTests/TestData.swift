import HNSW

/// Clustered vectors (Gaussian-ish blobs around random centres), like embeddings: `count × dim`, row-major.
func clusteredVectors(count: Int, dim: Int, clusters: Int = 40, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    let centres = (0..<clusters * dim).map { _ in Float.random(in: -1...1, using: &rng) }
    var out = [Float](repeating: 0, count: count * dim)
    for i in 0..<count {
        let c = Int.random(in: 0..<clusters, using: &rng)
        for d in 0..<dim {
            let noise = (Float.random(in: -1...1, using: &rng) + Float.random(in: -1...1, using: &rng)) * 0.18
            out[i * dim + d] = centres[c * dim + d] + noise
        }
    }
    return out
}

/// Exact k nearest rows (by the index's reported distance) among rows where `allowed` holds.
func bruteForce(
    _ data: [Float], dim: Int, query: ArraySlice<Float>, k: Int, metric: Metric,
    allowed: (Int) -> Bool = { _ in true }
) -> [(row: Int, distance: Float)] {
    let q = Array(query)
    var all: [(Int, Float)] = []
    for row in 0..<(data.count / dim) where allowed(row) {
        all.append((row, referenceDistance(Array(data[row * dim..<(row + 1) * dim]), q, metric)))
    }
    all.sort { $0.1 < $1.1 }
    return Array(all.prefix(k))
}

/// The distance FORMAT.md defines, from the scalar reference kernels.
func referenceDistance(_ a: [Float], _ b: [Float], _ metric: Metric) -> Float {
    switch metric {
    case .l2: return referenceL2Squared(a, b)
    case .innerProduct: return referenceNegativeDot(a, b)
    case .cosine:
        let na = -referenceNegativeDot(a, a), nb = -referenceNegativeDot(b, b)
        return 1 + referenceNegativeDot(a, b) / (na.squareRoot() * nb.squareRoot())
    }
}

func meanRecall(
    _ index: HNSWIndex, data: [Float], queries: [Float], dim: Int, k: Int = 10, ef: Int,
    filter: SearchFilter? = nil, mode: FilteredSearchMode = .admitMatching,
    allowed: (Int) -> Bool = { _ in true }
) throws -> Double {
    let n = queries.count / dim
    var total = 0.0
    for qi in 0..<n {
        let q = queries[qi * dim..<(qi + 1) * dim]
        let truth = Set(
            bruteForce(data, dim: dim, query: q, k: k, metric: index.parameters.metric, allowed: allowed).map(\.row))
        let got = try index.search(Array(q), k: k, searchEffort: ef, filter: filter, mode: mode).hits.map {
            Int($0.label)
        }
        total +=
            truth.isEmpty ? (got.isEmpty ? 1 : 0) : Double(Set(got).intersection(truth).count) / Double(truth.count)
    }
    return total / Double(n)
}

func buildIndex(
    _ data: [Float], dim: Int, metric: Metric = .l2, connectivity: Int = 16, effort: Int = 100,
    threads: Int = 1, seed: UInt64 = 7, traversal: TraversalPrecision = .int8
) throws -> HNSWIndex {
    let index = try HNSWIndex(
        parameters: HNSWParameters(
            dimensions: dim, metric: metric, connectivity: connectivity,
            constructionEffort: effort, seed: seed),
        traversal: traversal)
    _ = try index.insert(contentsOf: data, labels: (0..<(data.count / dim)).map(UInt64.init), threads: threads)
    return index
}
