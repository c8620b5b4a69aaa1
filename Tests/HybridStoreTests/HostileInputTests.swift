import Foundation
import HNSW
import Testing

import HybridStore

/// The defects a hostile user found (issue 17): each test fails without its fix.
@Suite struct HostileInputTests {
    // Item 1: cold rows give their exact vectors to `get` and `forEachRow` (export and `--like` use them).
    @Test func coldRowsReturnTheirExactVectors() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection(
            "c",
            schema: Schema(
                vector: VectorSpec(dimensions: 8, connectivity: 8, constructionEffort: 32),
                columns: [.integer("group", filterable: true)]))
        var vectors = randomVectors(96, dim: 8, seed: 7)
        vectors[0][3] = -0.0
        vectors[40][1] = -0.0
        vectors[70][2] = .leastNonzeroMagnitude
        try store.write { tx in
            for (i, v) in vectors.enumerated() {
                try tx.insert(.string("r\(i)"), into: c, vector: v, values: ["group": .integer(Int64(i / 32))])
            }
        }
        _ = try store.tier(c, where: Column("group") == 1, to: .cold)
        _ = try store.tier(c, where: Column("group") == 2, to: .cold, codec: .float16BitShuffledLZ4)
        try store.write { tx in _ = try tx.delete([.string("r33")], from: c) }

        func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }
        let ids = (0..<96).map { RowID.string("r\($0)") }
        let rows = try store.get(ids, from: c, includeVector: true)
        #expect(rows.count == 95)
        for row in rows {
            guard case .string(let name) = row.id, let i = Int(name.dropFirst()) else { Issue.record("id"); continue }
            let stored = try #require(row.vector)
            if i < 64 {
                #expect(bits(stored) == bits(vectors[i]), "row \(i)")  // hot, and float32 cold: bit-exact
            } else {
                #expect(bits(stored) == bits(vectors[i].map { Float(Float16($0)) }), "row \(i)")  // float16 as stored
            }
        }
        var seen = 0
        try store.forEachRow(in: c, batch: 10) { row in
            seen += 1
            #expect(row.vector?.count == 8)
        }
        #expect(seen == 95)
        // A cold row as a query vector (what `query --like` does).
        let like = try #require(try store.get(["r40"], from: c, includeVector: true).first?.vector)
        let hits = try store.search(c, near: like, k: 1)
        #expect(hits.first?.id == "r40" && hits.first?.distance == 0)
    }

    // Item 2: text with NUL is stored whole: two ids differing after a NUL are two rows.
    @Test func textWithNULIsNeverCut() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection(
            "c",
            schema: Schema(
                vector: VectorSpec(dimensions: 2), columns: [.text("body", filterable: true), .text("note")]))
        try store.write { tx in
            try tx.insert(
                "nul\u{0}x", into: c, vector: [1, 0], values: ["body": .text("a\u{0}b"), "note": .text("x\u{0}")])
            try tx.insert("nul\u{0}y", into: c, vector: [0, 1], values: ["body": .text("a\u{0}c")])
        }
        #expect(try store.count(c) == 2)
        let rows = try store.get(["nul\u{0}x", "nul\u{0}y"], from: c)
        #expect(rows.map(\.id) == ["nul\u{0}x", "nul\u{0}y"])
        #expect(rows.first?.values["body"] == .text("a\u{0}b") && rows.first?.values["note"] == .text("x\u{0}"))
        #expect(try store.count(c, where: Column("body") == "a\u{0}c") == 1)
        #expect(try store.search(c, near: [0, 1], k: 1, where: Column("body") == "a\u{0}c").first?.id == "nul\u{0}y")
        try store.write { tx in try tx.upsert("nul\u{0}x", into: c, vector: [1, 1], values: [:]) }
        #expect(try store.count(c) == 2)
    }

    // Item 4: names the outputs use for the row itself are reserved.
    @Test(arguments: ["id", "distance", "vector", "ID", "Vector"])
    func reservedColumnNamesAreRefused(_ name: String) throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        #expect(
            errorCode {
                _ = try store.createCollection(
                    "c", schema: Schema(vector: VectorSpec(dimensions: 2), columns: [.integer(name)]))
            } == .invalidSchema)
        #expect(try store.collections().isEmpty)
    }

    // Item 5: vectors whose distances could overflow Float, and direction-less cosine vectors, are refused.
    @Test func vectorsWhoseDistancesOverflowAreRefused() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let l2 = try store.createCollection("l2", schema: Schema(vector: VectorSpec(dimensions: 3)))
        let cos = try store.createCollection("cos", schema: Schema(vector: VectorSpec(dimensions: 3, metric: .cosine)))
        let ip = try store.createCollection(
            "ip", schema: Schema(vector: VectorSpec(dimensions: 3, metric: .innerProduct)))
        for (c, v) in [
            (l2, [Float](arrayLiteral: 3.4e38, 3.4e38, 0)), (cos, [1e30, 0, 0]), (ip, [2e19, 0, 0]),
            (cos, [0, 0, 0]), (cos, [1e-30, 0, 0]),
        ] {
            #expect(
                errorCode { try store.write { tx in try tx.insert("bad", into: c, vector: v) } } == .nonFiniteVector)
            #expect(try store.count(c) == 0)
            #expect(errorCode { _ = try store.search(c, near: v, k: 1) } == .nonFiniteVector)
        }
        // The largest accepted norms still give finite distances between opposite vectors.
        let big = Float((maximumSquaredNorm).squareRoot() * 0.999)
        for c in [l2, ip] {
            try store.write { tx in
                try tx.insert("a", into: c, vector: [big, 0, 0])
                try tx.insert("b", into: c, vector: [-big, 0, 0])
            }
            let hits = try store.search(c, near: [big, 0, 0], k: 2)
            #expect(hits.count == 2 && hits.allSatisfy { $0.distance.isFinite })
        }
    }

    // Item 8: any k ≥ 1 is a valid request, answered with at most the rows there are.
    @Test func hugeKIsClampedNotATrap() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection("chunks", schema: chunkSchema)
        try fill(store, c, count: 50)
        for k in [Int.max, 1 << 60, 51] {
            #expect(try store.search(c, near: [Float](repeating: 0, count: 8), k: k).count == 50)
            #expect(
                try store.search(c, near: [Float](repeating: 0, count: 8), k: k, where: Column("year") >= 2010).count
                    == (0..<50).filter { 2000 + $0 % 25 >= 2010 }.count)
        }
        let index = try HNSWIndex(parameters: HNSWParameters(dimensions: 2))
        try index.insert([1, 0], label: 1)
        #expect(try index.search([1, 0], k: Int.max).hits.count == 1)
        #expect(try index.exactSearch([1, 0], k: Int.max, candidates: [0]).hits.count == 1)
    }

    // Item 10: only an explicit create makes a store.
    @Test func openingWhatIsNotAStoreCreatesNothing() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        try FileManager.default.createDirectory(atPath: t.path, withIntermediateDirectories: true)
        #expect(errorCode { _ = try HybridStore(directory: t.path) } == .notAStore)
        #expect(errorCode { _ = try HybridStore(directory: t.path, mode: .readOnly) } == .notAStore)
        #expect(try FileManager.default.contentsOfDirectory(atPath: t.path).isEmpty)
        #expect(errorCode { _ = try HybridStore(directory: t.path + "/nope") } == .notAStore)
        #expect(!FileManager.default.fileExists(atPath: t.path + "/nope"))
        // A store whose database was deleted beside its snapshot is not reopened empty.
        let store = try t.open()
        try fill(store, try store.createCollection("chunks", schema: chunkSchema), count: 20)
        try store.checkpoint()
        store.close()
        try FileManager.default.removeItem(atPath: t.path + "/store.sqlite")
        #expect(errorCode { _ = try HybridStore(directory: t.path) } == .notAStore)
        #expect(!FileManager.default.fileExists(atPath: t.path + "/store.sqlite"))
    }

    // Item 11: a read-only open reads, refuses writes with a typed error, shares, and writes no file.
    @Test func readOnlyOpenWritesNothing() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let writer = try t.open()
        let c = try writer.createCollection("chunks", schema: chunkSchema)
        try fill(writer, c, count: 40)
        _ = try writer.tier(c, where: Column("year") < 2005, to: .cold)
        writer.close()
        func listing() throws -> [String: Date] {
            var out: [String: Date] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: t.path) {
                let a = try FileManager.default.attributesOfItem(atPath: t.path + "/" + name)
                out[name] = a[.modificationDate] as? Date
            }
            return out
        }
        let before = try listing()
        let a = try HybridStore(directory: t.path, mode: .readOnly)
        let b = try HybridStore(directory: t.path, mode: .readOnly)  // shared
        #expect(errorCode { _ = try HybridStore(directory: t.path) } == .storeLocked)  // no writer meanwhile
        let ca = try a.collection("chunks")
        #expect(try a.count(ca) == 40)
        #expect(try a.search(ca, near: [Float](repeating: 0, count: 8), k: 40).count == 40)
        #expect(try b.get(["r1"], from: b.collection("chunks"), includeVector: true).first?.vector?.count == 8)
        #expect(errorCode { _ = try a.write { tx in try tx.delete(["r1"], from: ca) } } == .readOnly)
        #expect(errorCode { try a.checkpoint() } == .readOnly)
        #expect(errorCode { _ = try a.createCollection("x", schema: chunkSchema) } == .readOnly)
        #expect(errorCode { _ = try a.tier(ca, to: .hot) } == .readOnly)
        a.close()
        b.close()
        #expect(try listing() == before)
        #expect(try t.open().count(c) == 40)
    }

    // Item 12: a query quota holds across closes and reopens (each process starts with the stored window).
    @Test func queryQuotaHoldsAcrossReopens() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        var store = try t.open()
        let c = try store.createCollection(
            "chunks",
            schema: Schema(
                vector: VectorSpec(dimensions: 2), columns: [.text("tenant", nullable: false, filterable: true)],
                tenantColumn: "tenant"))
        try store.createTenant("acme", quota: TenantQuota(maxQueries: 2, queryPeriodSeconds: 86_400))
        try store.tenant("acme").write { tx in try tx.insert("a", into: c, vector: [1, 0]) }
        var answered = 0
        for _ in 0..<3 {
            store.close()
            store = try t.open()
            if (try? store.tenant("acme").search(store.collection("chunks"), near: [1, 0], k: 1)) != nil {
                answered += 1
            }
        }
        #expect(answered == 2)
        #expect(errorCode { _ = try store.tenant("acme").search(c, near: [1, 0], k: 1) } == .quotaExceeded)
        store.close()
    }

    // Item 14: temp files of a killed checkpoint are removed on open; a corrupt snapshot is replaced.
    @Test func staleSnapshotFilesAreCleanedAndBadSnapshotsReplaced() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        var store = try t.open()
        try fill(store, try store.createCollection("chunks", schema: chunkSchema), count: 30)
        try store.checkpoint()
        store.close()
        let snapshot = try #require(
            try FileManager.default.contentsOfDirectory(atPath: t.path).first { $0.hasSuffix(".hsnap") })
        let stale = t.path + "/" + snapshot + ".tmp-999999"
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: stale))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: t.path + "/" + snapshot))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: t.path + "/" + snapshot))
        var phases: [RecoveryProgress.Phase] = []
        let record = Locked<[RecoveryProgress.Phase]>([])
        store = try t.open { $0.recoveryProgress = { p in record.withLock { $0.append(p.phase) } } }
        phases = record.withLock { $0 }
        #expect(phases.contains(.rebuilding))
        #expect(!FileManager.default.fileExists(atPath: stale))
        store.close()
        // The rebuilt index was written back: the next open loads it instead of rebuilding again.
        let again = Locked<[RecoveryProgress.Phase]>([])
        store = try t.open { $0.recoveryProgress = { p in again.withLock { $0.append(p.phase) } } }
        #expect(!again.withLock { $0 }.contains(.rebuilding))
        #expect(try store.count(store.collection("chunks")) == 30)
        store.close()
    }

    // Item 13: under a tenant scope, explain and errors speak only of the tenant's rows.
    @Test func tenantExplanationSpeaksOnlyOfTheTenant() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection(
            "c",
            schema: Schema(
                vector: VectorSpec(dimensions: 4, connectivity: 8, constructionEffort: 32),
                columns: [.text("tenant", nullable: false, filterable: true), .integer("year", filterable: true)],
                tenantColumn: "tenant"))
        let vectors = randomVectors(3000, dim: 4, seed: 3)
        try store.write { tx in
            for (i, v) in vectors.enumerated() {
                // acme: 300 rows, none in 1990; globex: the rest, a third of them in 1990.
                let acme = i % 10 == 0
                try tx.insert(
                    .string("r\(i)"), into: c, vector: v,
                    values: [
                        "tenant": .text(acme ? "acme" : "globex"),
                        "year": .integer(acme ? 2000 + Int64(i % 7) : (i % 3 == 0 ? 1990 : 2001)),
                    ])
            }
        }
        let acme = try store.tenant("acme")
        let e = try acme.query(
            c, near: vectors[0], k: 10, where: Column("year") == 1990, options: QueryOptions(),
            returning: [], explain: true
        ).explanation
        #expect(e.plan.estimatedMatches == 0 && e.actualMatches == 0)
        #expect(e.scopedToTenant == "acme" && e.plan.alternatives.isEmpty && e.visitedNodes == 0)
        #expect(!e.description.contains("3000") && e.description.contains("tenant acme"))
        // Its own rows are estimated exactly (300 ≤ the sample).
        let all = try acme.query(
            c, near: vectors[0], k: 10, where: Column("year") >= 2003, options: QueryOptions(),
            returning: [], explain: true
        ).explanation
        #expect(all.plan.estimatedMatches == Double(all.actualMatches ?? -1))
        // A duplicate id says the same whether the holder is the tenant itself or another.
        func message(_ id: String) -> String? {
            do { try acme.write { tx in try tx.insert(.string(id), into: c, vector: [0, 0, 0, 1]) } } catch {
                return error.message.replacingOccurrences(of: id, with: "ID")
            }
            return nil
        }
        #expect(message("r0") != nil && message("r0") == message("r1"))  // r0 is acme's, r1 globex's
    }

    // Item 9: deep nesting is an error at an offset, and long OR lists compile to SQL SQLite accepts.
    @Test func deepAndLongFiltersAreHandled() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection("chunks", schema: chunkSchema)
        try fill(store, c, count: 100)
        let deep = String(repeating: "(", count: 30_000) + "year = 1" + String(repeating: ")", count: 30_000)
        do {
            _ = try store.parseFilter(deep)
            Issue.record("a 30,000-deep filter parsed")
        } catch {
            #expect(error.code == .invalidFilter && error.context["offset"] == "1000")
        }
        #expect(
            errorCode { _ = try store.parseFilter(String(repeating: "NOT ", count: 5000) + "year = 1") }
                == .invalidFilter)
        // 1,000 levels (the limit) still work end to end.
        let limit = String(repeating: "(", count: 999) + "year >= 2010" + String(repeating: ")", count: 999)
        #expect(try store.count(c, where: try store.parseFilter(limit)) == 60)
        // 6,000 ORs, over a column that is not in memory (SQLite evaluates them), in count, ids and delete.
        let or = (0..<6000).map { "body = 'row \($0)'" }.joined(separator: " OR ")
        let f = try store.parseFilter(or)
        #expect(try store.count(c, where: f) == 100)
        #expect(try store.ids(in: c, where: f).count == 100)
        #expect(try store.search(c, near: [Float](repeating: 0, count: 8), k: 5, where: f).count == 5)
        let longIn = Filter.isIn(column: "body", (0..<40_000).map { .text("row \($0)") })
        do {
            _ = try store.count(c, where: longIn)
            Issue.record("40,000 bound values accepted")
        } catch {
            #expect(error.code == .invalidFilter && error.message.count < 300)
        }
        #expect(try store.write { tx in try tx.delete(try store.ids(in: c, where: f), from: c) } == 100)
    }

    // Item 5, the other side: rows committed before the norm check (a zero vector under cosine) still load when
    // the index is rebuilt, so such a store opens; new writes of them are refused.
    @Test func rowsWrittenBeforeTheNormCheckStillOpen() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        var store = try t.open()
        let c = try store.createCollection("c", schema: Schema(vector: VectorSpec(dimensions: 3, metric: .cosine)))
        try store.write { tx in
            try tx.insert("a", into: c, vector: [1, 0, 0])
            try tx.insert("b", into: c, vector: [0, 1, 0])
        }
        store.close()
        // What an older build let through: row b's vector becomes all zeros, and no snapshot is left.
        let db = try Connection(path: t.path + "/store.sqlite", create: false)
        try db.statement("UPDATE hs_rows_1 SET vector = ?1 WHERE id = 'b'").run([
            .blob([UInt8](repeating: 0, count: 12))
        ])
        for name in try FileManager.default.contentsOfDirectory(atPath: t.path) where name.hasSuffix(".hsnap") {
            try FileManager.default.removeItem(atPath: t.path + "/" + name)
        }
        store = try t.open()
        #expect(try store.count(store.collection("c")) == 2)
        #expect(try store.search(store.collection("c"), near: [1, 0, 0], k: 1).first?.id == "a")
        #expect(
            errorCode { try store.write { tx in try tx.upsert("b", into: store.collection("c"), vector: [0, 0, 0]) } }
                == .nonFiniteVector)
        store.close()
    }
}
