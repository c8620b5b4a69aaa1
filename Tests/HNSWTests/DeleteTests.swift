import Testing
import HNSW

@Suite struct DeleteTests {
    @Test func deletedNodesNeverAppearAndSlotsAreReused() throws {
        let dim = 8
        let data = clusteredVectors(count: 2000, dim: dim, seed: 21)
        let index = try buildIndex(data, dim: dim)
        let doomed = Set(stride(from: 0, to: 2000, by: 3).map(UInt64.init))
        for label in doomed { try index.remove(label: label) }
        #expect(index.count == 2000 - doomed.count)
        for qi in 0..<50 {
            // Query with the deleted vectors themselves: the closest thing must not be them.
            let q = Array(data[qi * 3 * dim..<(qi * 3 + 1) * dim])
            let hits = try index.search(q, k: 10, searchEffort: 80).hits
            #expect(hits.allSatisfy { !doomed.contains($0.label) })
            #expect(hits.count == 10)
        }
        index.repair()
        #expect(index.pendingDeletes == 0)
        #expect(index.checkInvariants() == [])
        let capacityBefore = index.nodeCapacity
        try index.insert(Array(repeating: 0.5, count: dim), label: 99_999)
        #expect(index.nodeCapacity == capacityBefore, "a freed slot is reused")
        #expect(try index.search(Array(repeating: 0.5, count: dim), k: 1).hits.first?.label == 99_999)
        #expect(index.checkInvariants() == [])
    }

    /// After deleting 10 % of the rows and inserting them back, recall at the same ef stays within 0.02 of
    /// a fresh build.
    @Test func recallHoldsAfterDeleteAndReinsert() throws {
        let dim = 16
        let count = 5000
        let data = clusteredVectors(count: count, dim: dim, seed: 31)
        let queries = clusteredVectors(count: 100, dim: dim, seed: 32)
        let fresh = try buildIndex(data, dim: dim)
        let freshRecall = try meanRecall(fresh, data: data, queries: queries, dim: dim, ef: 40)

        let index = try buildIndex(data, dim: dim)
        var rng = SplitMix64(seed: 33)
        let victims = Array((0..<count).shuffled(using: &rng).prefix(count / 10))
        for row in victims { try index.remove(label: UInt64(row)) }
        let capacity = index.nodeCapacity
        for row in victims {
            try index.insert(Array(data[row * dim..<(row + 1) * dim]), label: UInt64(row))
        }
        #expect(index.count == count)
        #expect(index.nodeCapacity <= capacity + count / 50, "most freed slots were reused")
        #expect(index.checkInvariants() == [])
        let after = try meanRecall(index, data: data, queries: queries, dim: dim, ef: 40)
        #expect(after >= freshRecall - 0.02, "fresh \(freshRecall), after delete+reinsert \(after)")
    }

    @Test func deletingEverythingThenInsertingWorks() throws {
        let data = clusteredVectors(count: 200, dim: 4, seed: 41)
        let index = try buildIndex(data, dim: 4)
        for row in 0..<200 { try index.remove(label: UInt64(row)) }
        #expect(try index.search([0, 0, 0, 0], k: 5).hits.isEmpty)
        index.repair()
        #expect(index.checkInvariants() == [])
        try index.insert([1, 1, 1, 1], label: 7)
        #expect(try index.search([1, 1, 1, 1], k: 5).hits.map(\.label) == [7])
    }
}
