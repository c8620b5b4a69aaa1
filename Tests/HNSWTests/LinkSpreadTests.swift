import Foundation
import Testing
import HNSW

@Suite struct LinkSpreadTests {
    /// A filter drawn independently of the vectors links outside itself as often as at random (1), whether drawn by
    /// a hash or by a row number's residue (which a plain stride over the slots could line up with); one that keeps
    /// half the clusters (those whose centre lies on one side of a plane) links outside itself far less; the ends
    /// (nothing or everything matches) cannot tell.
    @Test func aFilterFollowingTheDataLinksAmongItself() throws {
        let index = try SearchTests.shared()
        let dim = SearchTests.dim, data = SearchTests.data
        func node(_ row: Int) -> UInt32 { index.node(forLabel: UInt64(row))! }
        var side = [Bool](repeating: false, count: index.nodeCapacity)
        var half = [Bool](repeating: false, count: index.nodeCapacity)
        var residue = [Bool](repeating: false, count: index.nodeCapacity)
        for row in 0..<6000 {
            side[Int(node(row))] = data[row * dim] > 0
            half[Int(node(row))] = SplitMix64.mix(UInt64(row)) % 2 == 0
            residue[Int(node(row))] = row % 7 == 3
        }
        func share(_ set: [Bool]) -> Double { Double(set.count { $0 }) / 6000 }
        #expect(index.linkSpread(selectivity: share(half), matches: { half[Int($0)] }) == 1)
        #expect(index.linkSpread(selectivity: share(residue), matches: { residue[Int($0)] }) == 1)
        let following = try #require(index.linkSpread(selectivity: share(side), matches: { side[Int($0)] }))
        #expect(following < 0.5, "\(following)")
        #expect(index.linkSpread(selectivity: 0, matches: { _ in false }) == nil)
        #expect(index.linkSpread(selectivity: 1, matches: { _ in true }) == nil)
    }

    /// A filter's own curve: rows of the index as queries, each hidden and left out of its own exact answer (so a
    /// matching row finds its matching neighbours, not itself), one list of recalls per effort measured, stopping at
    /// the first effort `enough` accepts; `drawnFrom` restricts where the queries come from.
    @Test func aFiltersRecallIsMeasuredWithRowsAsQueries() throws {
        let index = try SearchTests.shared()
        let dim = SearchTests.dim, data = SearchTests.data
        var side = [Bool](repeating: false, count: index.nodeCapacity)
        for row in 0..<6000 { side[Int(index.node(forLabel: UInt64(row))!)] = data[row * dim] > 0 }
        let matches = side
        let candidates = (0..<UInt32(matches.count)).filter { matches[Int($0)] }
        let filter = SearchFilter.predicate { matches[Int($0)] }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
        let all = index.filteredRecall(efforts: [10, 400], k: 10, queries: 64, filter: filter, candidates: candidates)
        #expect(all.count == 2 && all.allSatisfy { $0.count == 64 && $0.allSatisfy { (0...1).contains($0) } })
        #expect(mean(all[1]) >= mean(all[0]) && mean(all[1]) >= 0.95, "\(mean(all[0])) \(mean(all[1]))")
        let inside = index.filteredRecall(
            efforts: [10, 400], k: 10, queries: 64, filter: filter, candidates: candidates,
            drawnFrom: { matches[Int($0)] })
        #expect(inside.count == 2 && inside[1].count == 64 && mean(inside[1]) >= 0.99, "\(inside)")
        let few = index.filteredRecall(
            efforts: [10, 400], k: 10, queries: 64, filter: filter, candidates: candidates, drawnFrom: { $0 < 5 })
        #expect(few.count == 2 && few[0].count == 5)
        let first = index.filteredRecall(
            efforts: [10, 400], k: 10, queries: 64, filter: filter, candidates: candidates, enough: { _ in true })
        #expect(first.count == 1 && first[0] == all[0])
        // Spread over threads, under the same matches as a bitset (as the store passes them): the same recalls,
        // query by query, in the same order.
        var set = NodeBitset(capacity: index.nodeCapacity)
        for node in candidates { set.insert(node) }
        let threaded = index.filteredRecall(
            efforts: [10, 400], k: 10, queries: 64, filter: .bitset(set), candidates: candidates, threads: 3)
        #expect(threaded == all)
        #expect(HNSWIndex.concurrentMap(10, threads: 3) { $0 * $0 } == (0..<10).map { $0 * $0 })
        #expect(HNSWIndex.concurrentMap(2, threads: 8) { $0 + 1 } == [1, 2])
        #expect(HNSWIndex.concurrentMap(0, threads: 2) { $0 }.isEmpty)
    }

    /// The step the sample strides by visits every slot once before it comes back to the first.
    @Test(arguments: [1, 2, 3, 7, 64, 100, 6000, 65_536, 99_991])
    func theStepVisitsEverySlot(slots: Int) {
        let step = HNSWIndex.coprimeStep(slots)
        var seen = [Bool](repeating: false, count: slots)
        var slot = 0
        for _ in 0..<slots {
            seen[slot] = true
            slot = (slot + step) % slots
        }
        #expect(seen.allSatisfy { $0 } && slot == 0, "step \(step)")
    }
}
