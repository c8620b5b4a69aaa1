import Foundation
import Synchronization
import Testing
import HybridStore

/// Reads that see one committed state: a snapshot's searches, gets and counts agree with each other and do not
/// move while a writer commits; and no single query sees half of a transaction.
@Suite struct SnapshotTests {
    @Test func aSnapshotDoesNotMoveWhileAWriterCommits() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        let vectors = try fill(store, c, count: 600)
        let queries = randomVectors(12, dim: 8, seed: 99)
        let filter = try store.parseFilter("year >= 2005")
        let ids: [RowID] = (0..<40).map { .string("r\($0 * 7)") }
        struct Seen: Equatable {
            var count: Int, filtered: Int
            var hits: [[SearchHit]]
            var rows: [Row]
        }
        func look(_ snap: borrowing Snapshot) throws -> Seen {
            Seen(
                count: try snap.count(c), filtered: try snap.count(c, where: filter),
                hits: try queries.map { q in
                    try snap.search(c, near: q, k: 10, where: filter, returning: ["year", "body"])
                },
                rows: try snap.get(ids, from: c, includeVector: true))
        }
        let (before, after, sequences) = try store.read { snap -> (Seen, Seen, (Int64, Int64)) in
            let before = try look(snap)
            // A writer commits meanwhile: deletes, moves vectors next to the queries, changes values, inserts.
            try store.write { tx in
                _ = try tx.delete((0..<100).map { .string("r\($0 * 3)") }, from: c)
                for (i, q) in queries.enumerated() {
                    try tx.upsert(.string("r\(i * 3 + 1)"), into: c, vector: q, values: ["year": .integer(2020)])
                    try tx.insert(
                        .string("new\(i)"), into: c, vector: q.map { $0 + 0.001 },
                        values: [
                            "tenant": .text("acme"), "year": .integer(2024),
                        ])
                }
                for i in stride(from: 2, to: 300, by: 3) {
                    try tx.upsert(.string("r\(i)"), into: c, vector: nil, values: ["year": .integer(1990)])
                }
            }
            let outside = try store.read { fresh in fresh.sequence }
            return (before, try look(snap), (snap.sequence, outside))
        }
        #expect(after == before)
        #expect(before.count == 600)
        #expect(sequences.1 > sequences.0)
        // Outside the snapshot the write is there.
        #expect(try store.count(c) == 600 - 100 + queries.count)
        let now = try store.search(c, near: queries[0], k: 2, where: filter)
        #expect(Set(now.map(\.id)) == [.string("r1"), .string("new0")])
        _ = vectors
    }

    @Test func aSnapshotAnswersAsAnExactScanOfItsState() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        var vectors = try fill(store, c, count: 300)
        let q = randomVectors(1, dim: 8, seed: 5)[0]
        try store.read { snap in
            // Move the 20 rows nearest to q far away, after the snapshot was taken.
            let nearest = vectors.indices.sorted { l2(vectors[$0], q) < l2(vectors[$1], q) }.prefix(20)
            try store.write { tx in
                for i in nearest { try tx.upsert(.string("r\(i)"), into: c, vector: vectors[i].map { $0 + 50 }) }
            }
            let hits = try snap.search(c, near: q, k: 10)
            let truth = vectors.indices.sorted { l2(vectors[$0], q) < l2(vectors[$1], q) }.prefix(10).map {
                RowID.string("r\($0)")
            }
            #expect(hits.map(\.id) == Array(truth))
            for i in nearest { vectors[i] = vectors[i].map { $0 + 50 } }
        }
        // Outside the snapshot the moves are seen (exactly: the graph search after 20 moves in 300 rows can miss a
        // neighbour on a rare build, once seen under a loaded test run; what is checked here is the rows' state).
        let truth = vectors.indices.sorted { l2(vectors[$0], q) < l2(vectors[$1], q) }.prefix(10).map {
            RowID.string("r\($0)")
        }
        let exact = try store.query(c, near: q, k: 10, where: nil, options: QueryOptions(strategy: .exact)).hits
        #expect(exact.map(\.id) == Array(truth))
    }

    @Test func noQuerySeesHalfOfATransaction() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        try fill(store, c, count: 400)
        // Each transaction moves the pair (p, q) a step along a path far from every other row. Memory holds the
        // pair at its old or its new place; a reader that saw the old nodes hidden before the new ones appeared
        // would find neither of them.
        @Sendable func point(_ t: Int) -> [Float] { (0..<8).map { Float(30 + $0) + Float(t) * 0.001 } }
        let written = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        let writer = Thread {
            for t in 1...300 {
                try? store.write { tx in
                    try tx.upsert("p", into: c, vector: point(t), values: ["tenant": .text("acme")])
                    try tx.upsert("q", into: c, vector: point(t).map { $0 + 0.0001 }, values: ["tenant": .text("acme")])
                }
                written.store(t, ordering: .releasing)
            }
            done.store(true, ordering: .releasing)
        }
        writer.start()
        while written.load(ordering: .acquiring) == 0 { Thread.sleep(forTimeInterval: 0.001) }
        var checks = 0, torn = 0
        while !done.load(ordering: .acquiring) {
            let t = written.load(ordering: .acquiring)
            // An exact scan: a graph search may miss a row near its replaced node, which is not what is checked here.
            let hits = try store.query(
                c, near: point(t), k: 2, where: nil, options: QueryOptions(strategy: .exact),
                returning: checks % 2 == 0 ? [] : ["year"]
            ).hits
            if Set(hits.map(\.id)) != [.string("p"), .string("q")] { torn += 1 }
            checks += 1
        }
        #expect(torn == 0, "\(torn) of \(checks) searches did not find the pair, which every committed state holds")
        #expect(checks > 50)
    }

    /// Searches of every kind while a writer adds rows: the writer links new vectors as pending nodes before it
    /// makes them visible, so searches walk nodes that have no values yet. None may crash, return such a node,
    /// break its filter or come back short.
    @Test func searchesMeetNodesBeingLinked() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        let vectors = try fill(store, c, count: 600)
        let done = Atomic<Bool>(false)
        let writer = Thread {
            var rng = SplitMix64(seed: 9)
            for t in 0..<150 {
                try? store.write { tx in
                    for j in 0..<4 {
                        let v = (0..<8).map { _ in Float.random(in: -1...1, using: &rng) }
                        try tx.insert(
                            .string("new-\(t)-\(j)"), into: c, vector: v,
                            values: [
                                "tenant": .text(j % 2 == 0 ? "acme" : "globex"), "year": .integer(Int64(2000 + j)),
                            ])
                    }
                }
            }
            done.store(true, ordering: .releasing)
        }
        writer.start()
        let filters: [Filter?] =
            try [nil] + ["year >= 2010", "tenant = 'acme'", "year < 2003"].map { try Filter(parsing: $0) }
        let strategies: [Strategy?] = [nil, .filteredGraph, .postFilter]
        var checks = 0
        while !done.load(ordering: .acquiring) {
            let filter = filters[checks % filters.count]
            let strategy = filter == nil ? nil : strategies[checks / filters.count % strategies.count]
            let hits = try store.query(
                c, near: vectors[checks % vectors.count], k: 10, where: filter,
                options: QueryOptions(strategy: strategy), returning: ["year", "tenant"]
            ).hits
            #expect(hits.count == 10, "\(filter?.description ?? "no filter") by \(strategy.map { "\($0)" } ?? "plan")")
            if let filter {
                let matches = try store.count(c, where: filter)
                #expect(hits.count == min(10, matches))
            }
            checks += 1
        }
        #expect(checks > 20)
        #expect(try store.verify().isConsistent)
    }
}
