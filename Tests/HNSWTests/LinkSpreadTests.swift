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
