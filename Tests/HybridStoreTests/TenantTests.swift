import Foundation
import Testing
import HybridStore

/// Tenants as virtual tables: isolation through scoped handles, quotas checked in the write's transaction,
/// usage metered per tenant and tier, plans that follow the tenant's size, and dropping a tenant.
@Suite struct TenantTests {
    static let schema = Schema(
        vector: VectorSpec(dimensions: 8, metric: .l2, connectivity: 8, constructionEffort: 64),
        id: .string,
        columns: [
            .text("tenant", nullable: false, filterable: true), .integer("year", filterable: true), .text("body"),
        ],
        tenantColumn: "tenant")

    static func tenantOf(_ i: Int) -> String { ["acme", "globex", "initech"][i % 3] }

    /// Rows "r0"… spread over three tenants; returns the vectors.
    @discardableResult
    static func fill(_ store: HybridStore, _ c: CollectionRef, count: Int, seed: UInt64 = 7) throws -> [[Float]] {
        let vectors = randomVectors(count, dim: 8, seed: seed)
        try store.write { tx in
            for (i, v) in vectors.enumerated() {
                try tx.insert(
                    .string("r\(i)"), into: c, vector: v,
                    values: [
                        "tenant": .text(tenantOf(i)), "year": .integer(Int64(2000 + i % 25)), "body": .text("row \(i)"),
                    ])
            }
        }
        return vectors
    }

    /// The logical bytes of a row of `schema` (see `TenantUsage`).
    static func bytes(tenant: String, body: String) -> Int64 { Int64(4 * 8 + tenant.utf8.count + 8 + body.utf8.count) }

    @Test func aScopedHandleNeverSeesOrChangesAnotherTenantsRows() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: Self.schema)
        let vectors = try Self.fill(store, c, count: 300)
        let acme = try store.tenant("acme")
        let acmeRows = vectors.indices.filter { Self.tenantOf($0) == "acme" }
        let globexIDs = vectors.indices.filter { Self.tenantOf($0) == "globex" }.map { RowID.string("r\($0)") }

        // Search: exactly acme's nearest, whatever the filter tries.
        let q = vectors[1].map { $0 + 0.01 }
        let truth = acmeRows.sorted { l2(vectors[$0], q) < l2(vectors[$1], q) }.prefix(10).map {
            RowID.string("r\($0)")
        }
        #expect(try acme.search(c, near: q, k: 10).map(\.id) == Array(truth))
        #expect(try acme.search(c, near: q, k: 10, where: "tenant = 'globex'").isEmpty)
        #expect(try acme.search(c, near: q, k: 10, where: "NOT (tenant = 'acme')").isEmpty)
        let orTrick = try acme.search(c, near: q, k: 50, where: "tenant = 'globex' OR year >= 0", returning: ["tenant"])
        #expect(orTrick.count == 50 && orTrick.allSatisfy { $0.values["tenant"] == .text("acme") })
        let inTrick = try acme.search(c, near: q, k: 50, where: "tenant IN ('globex', 'initech') OR tenant IS NULL")
        #expect(inTrick.isEmpty)

        // Reads by id and counts.
        #expect(try acme.get(globexIDs, from: c).isEmpty)
        #expect(try acme.get(["r0", "r1", "r3"], from: c, returning: ["body"]).map(\.id) == ["r0", "r3"])
        #expect(try acme.get(["r0"], from: c, returning: ["body"]).first?.values == ["body": .text("row 0")])
        #expect(try acme.count(c) == acmeRows.count)
        #expect(try acme.count(c, where: Column("tenant") == "globex") == 0)
        #expect(try acme.count(c, where: Column("tenant") == "globex" || Column("year") >= 0) == acmeRows.count)
        #expect(try acme.ids(in: c) == acmeRows.map { .string("r\($0)") })

        // Writes to another tenant's ids change nothing.
        #expect(
            errorCode { try acme.write { tx in try tx.update("r1", in: c, values: ["body": .text("mine")]) } }
                == .notFound)
        #expect(try acme.delete(globexIDs, from: c) == 0)
        #expect(errorCode { try acme.write { tx in try tx.upsert("r1", into: c, vector: vectors[0]) } } == .duplicateID)
        #expect(errorCode { try acme.write { tx in try tx.insert("r1", into: c, vector: vectors[0]) } } == .duplicateID)
        #expect(try store.get(["r1"], from: c).first?.values["body"] == .text("row 1"))
        #expect(try store.count(c) == 300)

        // Writes through the scope carry its name and cannot name another tenant.
        #expect(
            errorCode {
                try acme.write { tx in
                    try tx.insert("new", into: c, vector: vectors[0], values: ["tenant": .text("globex")])
                }
            } == .wrongTenant)
        #expect(
            errorCode { try acme.write { tx in try tx.update("r0", in: c, values: ["tenant": .text("globex")]) } }
                == .wrongTenant)
        try acme.write { tx in try tx.insert("new", into: c, vector: vectors[0], values: ["body": .text("n")]) }
        #expect(try store.get(["new"], from: c).first?.values["tenant"] == .text("acme"))
        #expect(try acme.delete(["new", "r1", "r0"], from: c) == 2)
        #expect(try store.get(["r1"], from: c).count == 1)

        // A collection without a tenant column cannot be reached through a scope.
        let plain = try store.collection("plain", creatingIfMissing: chunkSchema)
        try HybridStoreTests.fill(store, plain, count: 10)
        #expect(errorCode { _ = try acme.search(plain, near: q, k: 3) } == .wrongTenant)
        #expect(errorCode { _ = try acme.count(plain) } == .wrongTenant)
        #expect(errorCode { _ = try acme.get(["r0"], from: plain) } == .wrongTenant)
        #expect(errorCode { _ = try acme.delete(["r0"], from: plain) } == .wrongTenant)
        #expect(try store.count(plain) == 10)
        #expect(try store.verify().isConsistent)
    }

    @Test func quotasRefuseAWriteInItsOwnTransactionAndChangeNothing() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: Self.schema)
        let v = randomVectors(20, dim: 8, seed: 3)
        try store.createTenant("acme", quota: TenantQuota(maxRows: 5))
        #expect(errorCode { try store.createTenant("acme") } == .tenantExists)
        let acme = try store.tenant("acme"), globex = try store.tenant("globex")
        try acme.write { tx in for i in 0..<5 { try tx.insert(.string("a\(i)"), into: c, vector: v[i]) } }

        // Over quota: a mixed transaction fails whole, naming tenant, quota and numbers.
        var thrown: HybridStoreError?
        do {
            try store.write { tx in
                try tx.insert("g0", into: c, vector: v[10], values: ["tenant": .text("globex")])
                try tx.insert("a5", into: c, vector: v[5], values: ["tenant": .text("acme")])
            }
        } catch { thrown = error }
        #expect(thrown?.code == .quotaExceeded)
        #expect(thrown?.context["tenant"] == "acme" && thrown?.context["quota"] == "rows")
        #expect(
            thrown?.context["limit"] == "5" && thrown?.context["current"] == "5" && thrown?.context["requested"] == "1")
        #expect(try store.get(["g0", "a5"], from: c).isEmpty)
        #expect(try store.search(c, near: v[5], k: 1).first?.id != "a5")
        #expect(try store.usage(tenant: "acme").rows == 5)
        #expect(errorCode { _ = try store.usage(tenant: "globex") } == .unknownTenant)

        // Replacing a row does not add one; lowering the quota refuses growth but lets deletes through.
        try acme.write { tx in try tx.upsert("a0", into: c, vector: v[6]) }
        try store.setQuota(TenantQuota(maxRows: 3), for: "acme")
        #expect(errorCode { try acme.write { tx in try tx.insert("a9", into: c, vector: v[9]) } } == .quotaExceeded)
        #expect(try acme.delete(["a4"], from: c) == 1)
        #expect(try acme.count(c) == 4)
        try store.setQuota(TenantQuota(), for: "acme")
        try acme.write { tx in try tx.insert("a9", into: c, vector: v[9]) }

        // Bytes: growing a row past the quota fails; shrinking it passes.
        try globex.write { tx in try tx.insert("g1", into: c, vector: v[11], values: ["body": .text("x")]) }
        let used = try store.usage(tenant: "globex").bytes
        #expect(used == Int64(4 * 8 + "globex".utf8.count + 1))  // no year: NULL counts 0
        try store.setQuota(TenantQuota(maxBytes: used + 10), for: "globex")
        #expect(
            errorCode {
                try globex.write { tx in
                    try tx.update("g1", in: c, values: ["body": .text(String(repeating: "y", count: 12))])
                }
            } == .quotaExceeded)
        try globex.write { tx in try tx.update("g1", in: c, values: ["body": .text(String(repeating: "y", count: 11))])
        }
        try globex.write { tx in try tx.update("g1", in: c, values: ["body": .null]) }
        #expect(try store.usage(tenant: "globex").bytes == used - 1)
        #expect(try store.quota(of: "globex") == TenantQuota(maxBytes: used + 10))

        // Queries per period.
        try store.setQuota(TenantQuota(maxQueries: 3, queryPeriodSeconds: 3600), for: "acme")
        for _ in 0..<3 { _ = try acme.search(c, near: v[0], k: 2) }
        #expect(errorCode { _ = try acme.search(c, near: v[0], k: 2) } == .quotaExceeded)
        _ = try globex.search(c, near: v[0], k: 2)
        #expect(errorCode { try store.setQuota(TenantQuota(maxRows: -1), for: "acme") } == .invalidArgument)
        #expect(errorCode { try store.setQuota(TenantQuota(maxQueries: 3), for: "acme") } == .invalidArgument)
        #expect(errorCode { _ = try store.tenant("") } == .invalidArgument)
        #expect(try store.verify().isConsistent)
    }

    /// `usage` counts every query that returned before it was asked, even while a background flush of the
    /// counters is between taking them from memory and committing them (it used to read the database then, and
    /// count neither: `planFollowsTheTenantsSizeNotTheStores` saw 0 vectors scored once under load).
    @Test func usageCountsEveryFinishedQueryWhileFlushesRun() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open { $0.usageFlushSeconds = 0 }  // every query schedules a flush
        let c = try store.collection("docs", creatingIfMissing: Self.schema)
        let vectors = try Self.fill(store, c, count: 60)
        let acme = try store.tenant("acme")
        for i in 1...3000 {
            _ = try acme.search(c, near: vectors[i % vectors.count], k: 5)
            let usage = try acme.usage()
            #expect(usage.queries == Int64(i), "after \(i) queries usage says \(usage.queries)")
            if usage.queries != Int64(i) { break }
        }
    }

    @Test func usageIsMeteredPerTenantAndTierAndSurvivesReopening() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let past = Date().addingTimeInterval(-7200)
        var explainedWork = 0
        do {
            let store = try tmp.open()
            let c = try store.collection("docs", creatingIfMissing: Self.schema)
            let vectors = try Self.fill(store, c, count: 90)
            let acme = try store.tenant("acme")
            var usage = try acme.usage()
            let acmeRows = vectors.indices.filter { Self.tenantOf($0) == "acme" }
            let bytes = acmeRows.reduce(Int64(0)) { $0 + Self.bytes(tenant: "acme", body: "row \($1)") }
            #expect(usage.rows == 30 && usage.hotRows == 30 && usage.coldRows == 0)
            #expect(usage.bytes == bytes && usage.bytesWritten == bytes && usage.rowsWritten == 30)

            try acme.delete(["r0", "r3"], from: c)
            for i in 0..<4 {
                let e = try acme.explain(c, near: vectors[i], k: 5)
                explainedWork += e.distanceComputations
            }
            // Unscoped queries are not charged to anyone.
            _ = try store.search(c, near: vectors[0], k: 5)
            try store.tier(c, where: Column("tenant") == "acme" && Column("year") < 2010, to: .cold)
            let cold = try store.count(c, where: Column("tenant") == "acme" && Column("year") < 2010)
            usage = try acme.usage()
            #expect(usage.rowsDeleted == 2 && usage.rows == 28)
            #expect(usage.coldRows == Int64(cold) && usage.hotRows == Int64(28 - cold) && cold > 0)
            // The explanation of a scoped query leaves its work counters out (they speak of other tenants' rows
            // too); the meter still counts the vectors scored.
            #expect(usage.queries == 4 && usage.vectorsScored > 0 && explainedWork == 0)
            #expect(
                usage.bytes == bytes - Self.bytes(tenant: "acme", body: "row 0")
                    - Self.bytes(tenant: "acme", body: "row 3"))
            // A returning cold row moves back in the accounts.
            try acme.write { tx in try tx.upsert("r6", into: c, vector: vectors[6]) }
            #expect(try acme.usage().hotRows == usage.hotRows + 1)  // r6: acme's, year 2006, so it was cold
            #expect(try store.verify().isConsistent)

            // Periods: nothing happened in the future; everything since two hours ago.
            let future = try store.usage(tenant: "acme", since: Date().addingTimeInterval(7200))
            #expect(future.rowsWritten == 0 && future.queries == 0 && future.rows == usage.rows)
            let recent = try store.usage(since: past)
            #expect(recent.map(\.tenant) == ["acme", "globex", "initech"])
            #expect(recent[0].rowsWritten == 31 && recent[0].queries == 4 && recent[0].since != nil)
            _ = try acme.search(c, near: vectors[1], k: 3)  // pending at close: flushed by close()
            store.close()
        }
        let store = try tmp.open()
        let usage = try store.usage(tenant: "acme")
        #expect(usage.queries == 5 && usage.rowsWritten == 31 && usage.rows == 28)
        #expect(try store.verify().isConsistent)
    }

    @Test func planFollowsTheTenantsSizeNotTheStores() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        var schema = Self.schema
        schema.vector = VectorSpec(dimensions: 32, metric: .l2, connectivity: 16, constructionEffort: 100)
        let c = try store.collection("docs", creatingIfMissing: schema)
        let vectors = randomVectors(24_020, dim: 32, seed: 11)
        let owner = { (i: Int) in i < 20 ? "small" : i % 3 == 0 ? "other" : "big" }
        try store.write { tx in
            for (i, v) in vectors.enumerated() {
                try tx.insert(
                    .string("r\(i)"), into: c, vector: v, values: ["tenant": .text(owner(i)), "year": .integer(2020)])
            }
        }
        let q = randomVectors(1, dim: 32, seed: 99)[0]
        let small = try store.tenant("small").explain(c, near: q, k: 10)
        #expect(small.plan.strategy == .exact && small.actualMatches == 20 && small.plan.estimatedMatches == 20)
        #expect(try store.tenant("small").usage().vectorsScored == 20)  // an exact scan of its 20 rows
        let big = try store.tenant("big").explain(c, near: q, k: 10)
        #expect(big.plan.strategy == .filteredGraph || big.plan.strategy == .filteredGraphMatchingOnly, "\(big)")
        #expect(big.filter == "tenant = 'big'")
        // Recall of the big tenant's graph search (uniform 32-d data is hard).
        var found = 0
        for query in randomVectors(20, dim: 32, seed: 5) {
            let hits = try store.tenant("big").search(c, near: query, k: 10)
            let truth = Set(
                vectors.indices.filter { owner($0) == "big" }.sorted { l2(vectors[$0], query) < l2(vectors[$1], query) }
                    .prefix(10).map { RowID.string("r\($0)") })
            #expect(hits.allSatisfy { truth.contains($0.id) || owner(Int($0.id.description.dropFirst())!) == "big" })
            found += Set(hits.map(\.id)).intersection(truth).count
        }
        #expect(Double(found) / 200 >= 0.85, "recall \(Double(found) / 200)")
    }

    /// A large tenant's filtered estimate comes from a stride over all rows (not a walk of its whole list): it must
    /// still track the tenant's own matches and ignore other tenants' values.
    @Test func aLargeTenantsEstimateTracksItsOwnMatchesAlone() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: Self.schema)
        var rng = SplitMix64(seed: 7)
        var years: [Int] = []
        try store.write { tx in
            for i in 0..<9_000 {
                let big = i % 4 != 0  // 3 rows in 4
                // The big tenant's years spread over 2000–2019; every other tenant's rows are year 2030.
                let year = big ? 2000 + Int(rng.next() % 20) : 2030
                if big { years.append(year) }
                try tx.insert(
                    .string("r\(i)"), into: c, vector: (0..<8).map { _ in Float(rng.next() % 1000) / 1000 },
                    values: ["tenant": .text(big ? "big" : "other\(i % 7)"), "year": .integer(Int64(year))])
            }
        }
        let q = [Float](repeating: 0.5, count: 8)
        for cut in [2002, 2010, 2030] {
            let e = try store.tenant("big").explain(c, near: q, k: 10, where: Column("year") < .integer(Int64(cut)))
            let truth = Double(years.filter { $0 < cut }.count)
            #expect(
                abs(e.plan.estimatedMatches - truth) <= max(0.15 * truth, 60),
                "year < \(cut): \(e.plan.estimatedMatches) vs \(truth)")
        }
        // Only other tenants' rows hold 2030: the big tenant's estimate of it stays 0.
        let none = try store.tenant("big").explain(c, near: q, k: 10, where: Column("year") == .integer(2030))
        #expect(none.plan.estimatedMatches == 0 && none.results == 0)
    }

    @Test func droppingATenantRemovesItsRowsVectorsUsageAndQuota() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        do {
            let store = try tmp.open()
            let c = try store.collection("docs", creatingIfMissing: Self.schema)
            let vectors = try Self.fill(store, c, count: 300)
            try store.setQuota(TenantQuota(maxRows: 1000, maxQueries: 10, queryPeriodSeconds: 60), for: "acme")
            try store.tier(c, where: Column("tenant") == "acme" && Column("year") < 2005, to: .cold)
            _ = try store.tenant("acme").search(c, near: vectors[0], k: 3)
            #expect(try store.dropTenant("acme") == 100)
            #expect(try store.count(c) == 200)
            #expect(try store.count(c, where: Column("tenant") == "acme") == 0)
            for i in stride(from: 0, to: 300, by: 3) {
                #expect(
                    try store.search(c, near: vectors[i], k: 5, returning: ["tenant"]).allSatisfy {
                        $0.values["tenant"] != .text("acme")
                    })
            }
            #expect(errorCode { _ = try store.usage(tenant: "acme") } == .unknownTenant)
            #expect(errorCode { try store.dropTenant("acme") } == .unknownTenant)
            #expect(try store.usage(tenant: "globex").rows == 100)
            let report = try store.verify()
            #expect(report.isConsistent, "\(report.collections.flatMap(\.mismatches)) \(report.tenantMismatches)")
            #expect(report.collections.first { $0.name == "docs" }?.indexNodes == 200)
            store.close()
        }
        let store = try tmp.open()
        #expect(try store.count(try store.collection("docs"), where: Column("tenant") == "acme") == 0)
        #expect(try store.tenantCount() == 2)
        #expect(try store.verify().isConsistent)
        // Dropping the collection takes its rows off the tenants; what they wrote stays on record.
        try store.dropCollection("docs")
        let globex = try store.usage(tenant: "globex")
        #expect(globex.rows == 0 && globex.bytes == 0 && globex.rowsWritten == 100)
        #expect(try store.verify().isConsistent)
    }

    @Test func tenantsAreRowsCostingFewBytes() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open { $0.synchronousCommits = false }
        _ = try store.collection("docs", creatingIfMissing: Self.schema)
        try store.checkpoint()
        let file = tmp.path + "/store.sqlite"
        func size() -> Int {
            (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0  // after a WAL checkpoint
        }
        let before = size()
        for i in 0..<3000 { try store.createTenant("tenant-\(i)", quota: TenantQuota(maxRows: 100)) }
        try store.checkpoint()
        #expect(try store.tenantCount() == 3000)
        let perTenant = Double(size() - before) / 3000
        #expect(perTenant < 300, "\(perTenant) bytes per tenant")
        #expect(try store.quota(of: "tenant-1234").maxRows == 100)
    }

    /// The in-memory lists of a text column (one per value, threaded through the nodes) stay exact under
    /// inserts, value changes, vector replacements (node reuse) and deletes: what a plan collects for a value
    /// equals what SQLite counts.
    @Test func textColumnListsStayExactUnderChurn() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: Self.schema)
        var rng = SplitMix64(seed: 17)
        let vectors = randomVectors(400, dim: 8, seed: 4)
        var present = Set<Int>()
        for round in 0..<12 {
            try store.write { tx in
                for _ in 0..<60 {
                    let i = Int(rng.next() % 400)
                    let tenant = "t\(rng.next() % 23)"
                    switch rng.next() % 4 {
                    case 0:
                        try tx.upsert(
                            .string("r\(i)"), into: c, vector: vectors[Int(rng.next() % 400)],
                            values: ["tenant": .text(tenant)])
                        present.insert(i)
                    case 1 where present.contains(i):
                        try tx.update(.string("r\(i)"), in: c, values: ["tenant": .text(tenant)])
                    case 2:
                        try tx.delete([.string("r\(i)")], from: c)
                        present.remove(i)
                    default:
                        if !present.contains(i) {
                            try tx.insert(
                                .string("r\(i)"), into: c, vector: vectors[i], values: ["tenant": .text(tenant)])
                            present.insert(i)
                        }
                    }
                }
            }
            for t in 0..<23 {
                let filter = Column("tenant") == .text("t\(t)")
                let e = try store.explain(
                    c, near: vectors[round], k: 400, where: filter, options: QueryOptions(strategy: .exact))
                #expect(e.actualMatches == (try store.count(c, where: filter)), "round \(round), t\(t)")
                #expect(e.results == e.actualMatches)
                #expect(abs(e.plan.estimatedMatches - Double(e.actualMatches ?? -1)) < 1e-6)
            }
        }
        #expect(try store.verify().isConsistent)
    }

    @Test func aTenantColumnMustBeANonNullFilterableTextColumn() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let v = VectorSpec(dimensions: 4)
        for columns: [ColumnSpec] in [
            [.text("t", nullable: true, filterable: true)], [.text("t", nullable: false)],
            [.integer("t", nullable: false, filterable: true)], [.text("u", nullable: false, filterable: true)],
        ] {
            #expect(
                errorCode {
                    _ = try store.createCollection("x", schema: Schema(vector: v, columns: columns, tenantColumn: "t"))
                }
                    == .invalidSchema)
        }
        #expect(try store.collections().isEmpty)
    }
}
