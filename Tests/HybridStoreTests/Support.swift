import Foundation
@_exported import HNSW  // the tests reach into the index (SplitMix64, HNSWIndex)
import HybridStore
@_exported import TestSupport  // every file of this target uses its TemporaryStore and generators

let chunkSchema = Schema(
    vector: VectorSpec(dimensions: 8, metric: .l2, connectivity: 8, constructionEffort: 64),
    id: .string,
    columns: [
        .text("tenant", nullable: false, filterable: true), .integer("year", filterable: true),
        .real("score"), .boolean("public"), .blob("raw"), .text("body"),
    ])

/// Inserts `count` rows "r0", "r1", … with deterministic vectors and values.
@discardableResult
func fill(_ store: HybridStore, _ collection: CollectionRef, count: Int, seed: UInt64 = 1) throws -> [[Float]] {
    let vectors = randomVectors(count, dim: 8, seed: seed)
    try store.write { tx in
        for (i, v) in vectors.enumerated() {
            try tx.insert(
                .string("r\(i)"), into: collection, vector: v,
                values: [
                    "tenant": .text(i % 3 == 0 ? "acme" : "globex"), "year": .integer(Int64(2000 + i % 25)),
                    "score": .real(Double(i) / 10), "public": .boolean(i % 2 == 0), "body": .text("row \(i)"),
                ])
        }
    }
    return vectors
}

func l2(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }

func errorCode(_ body: () throws -> Void) -> HybridStoreError.Code? {
    do { try body() } catch let error as HybridStoreError { return error.code } catch { return nil }
    return nil
}
