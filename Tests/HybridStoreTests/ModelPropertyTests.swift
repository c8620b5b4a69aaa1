import Foundation
import HNSW
import HybridStore
import Testing

/// Random sequences of writes, deletes, tier moves (both codecs), checkpoints and reopens against an in-memory
/// model of the rows a user should see: after every step, and after reopening, the store holds exactly the
/// model's rows, every vector bit as stored (float16 cold rows as rounded), and an exact search over both
/// tiers returns the model's nearest rows.
@Suite struct ModelPropertyTests {
    struct ModelRow: Equatable {
        var vector: [Float]
        var year: Int64
        var note: String?
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func randomSequencesMatchTheModel(seed: UInt64) throws {
        let t = TemporaryStore("model\(seed)")
        defer { t.cleanup() }
        var rng = SplitMix64(seed: seed)
        var store = try t.open()
        let schema = Schema(
            vector: VectorSpec(dimensions: 4, connectivity: 8, constructionEffort: 32),
            columns: [.integer("year", nullable: false, filterable: true), .text("note")])
        var c = try store.createCollection("m", schema: schema)
        var model: [String: ModelRow] = [:]
        var cold = Set<String>()  // keys whose rows are in the cold tier
        func randomVector() -> [Float] {
            (0..<4).map { _ in
                let x = Float.random(in: -2...2, using: &rng)
                return Int.random(in: 0..<20, using: &rng) == 0 ? -0.0 : x
            }
        }
        func id() -> String { "k\(Int.random(in: 0..<48, using: &rng))" }

        for step in 0..<120 {
            let op = Int.random(in: 0..<100, using: &rng)
            switch op {
            case 0..<45:  // a batch of upserts and inserts, one transaction
                var pending = model
                let batch = (0..<Int.random(in: 1...6, using: &rng)).map { _ in
                    (
                        id(), randomVector(), Int64.random(in: 2000...2024, using: &rng),
                        Bool.random(using: &rng) ? "note\(Int.random(in: 0..<9, using: &rng))\u{0}x" : nil
                    )
                }
                let insertOnly = op < 10
                var failed = false
                do {
                    try store.write { tx in
                        for (key, v, year, note) in batch {
                            let values: [String: Value] = [
                                "year": .integer(year), "note": note.map { .text($0) } ?? .null,
                            ]
                            if insertOnly {
                                try tx.insert(.string(key), into: c, vector: v, values: values)
                            } else {
                                try tx.upsert(.string(key), into: c, vector: v, values: values)
                            }
                            pending[key] = ModelRow(vector: v, year: year, note: note)
                        }
                    }
                } catch {
                    guard insertOnly && error.code == .duplicateID else { throw error }
                    failed = true  // the whole batch is rolled back
                }
                if !failed {
                    model = pending
                    for (key, _, _, _) in batch { cold.remove(key) }  // written rows are hot
                }
            case 45..<60:
                let keys = (0..<Int.random(in: 1...5, using: &rng)).map { _ in id() }
                let n = try store.write { tx in try tx.delete(keys.map { .string($0) }, from: c) }
                #expect(n == Set(keys).filter { model[$0] != nil }.count)
                for k in keys {
                    model[k] = nil
                    cold.remove(k)
                }
            case 60..<72:
                let year = Int64.random(in: 2000...2025, using: &rng)
                let float16 = Bool.random(using: &rng)
                _ = try store.tier(
                    c, where: Column("year") < .integer(year), to: .cold,
                    codec: float16 ? .float16BitShuffledLZ4 : .bitShuffledLZ4)
                // Rows that move now are stored as the codec holds them (rows already cold keep theirs).
                for (k, r) in model where r.year < year && !cold.contains(k) {
                    if float16 { model[k]!.vector = r.vector.map { Float(Float16($0)) } }
                    cold.insert(k)
                }
            case 72..<80:
                let year = Int64.random(in: 2000...2025, using: &rng)
                _ = try store.tier(c, where: Column("year") >= .integer(year), to: .hot)
                cold = cold.filter { model[$0]!.year < year }
            case 80..<88:
                try store.checkpoint()
            default:
                store.close()
                store = try t.open()
                c = try store.collection("m")
            }
            try check(store, c, model, "seed \(seed) step \(step)")
        }
        store.close()
        store = try t.open()
        try check(store, try store.collection("m"), model, "seed \(seed) after reopen")
        #expect(try store.verify().isConsistent)
        let stats = try store.statistics(store.collection("m"))
        #expect(stats.tiers["cold"] == cold.count)
        store.close()
    }

    func check(_ store: HybridStore, _ c: CollectionRef, _ model: [String: ModelRow], _ label: String) throws {
        #expect(try store.count(c) == model.count, "\(label)")
        var seen: [String: ModelRow] = [:]
        try store.forEachRow(in: c, batch: 7) { row in
            let note: String? = if case .text(let t)? = row.values["note"] { t } else { nil }
            guard case .integer(let year)? = row.values["year"], let v = row.vector else {
                Issue.record("\(label): row \(row.id) lacks its year or vector")
                return
            }
            seen[row.id.description] = ModelRow(vector: v, year: year, note: note)
        }
        for (k, want) in model {
            guard let got = seen[k] else { Issue.record("\(label): \(k) missing"); continue }
            #expect(
                got.vector.map(\.bitPattern) == want.vector.map(\.bitPattern) && got.year == want.year
                    && got.note == want.note, "\(label): \(k) \(got) vs \(want)")
        }
        #expect(Set(seen.keys) == Set(model.keys), "\(label)")
        guard !model.isEmpty else { return }
        // Exact over both tiers: the model's nearest, by the distance the store reports.
        let q: [Float] = [0.3, -0.2, 0.1, 0.5]
        let hits = try store.query(
            c, near: q, k: 5, where: nil,
            options: QueryOptions(strategy: .exact, coldProbes: .max)
        ).hits
        let truth = model.map { k, r in (k, zip(r.vector, q).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }) }
            .sorted { $0.1 < $1.1 }.prefix(5)
        #expect(
            hits.map(\.id.description) == truth.map(\.0)
                || zip(hits.map(\.distance), truth.map(\.1)).allSatisfy {
                    abs($0 - $1) <= 1e-4 * max(1, abs($1))
                }, "\(label): \(hits.map(\.id)) vs \(truth.map(\.0))")
    }
}
