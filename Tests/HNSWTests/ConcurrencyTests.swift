import Dispatch
import Foundation
import Synchronization
import Testing
import HNSW

@Suite struct ConcurrencyTests {
    /// Searches run while other threads insert and delete; every result must be a live label, and the graph
    /// must be sound afterwards.
    @Test func searchesDuringInsertsAndDeletes() throws {
        let dim = 12
        let data = clusteredVectors(count: 4000, dim: dim, seed: 51)
        let index = try HNSWIndex(parameters: HNSWParameters(dimensions: dim, constructionEffort: 60), capacity: 64)
        _ = try index.insert(contentsOf: Array(data[0..<1000 * dim]), labels: (0..<1000).map(UInt64.init))
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                switch worker {
                case 0, 1:
                    // Two inserters over disjoint halves of the remaining rows (forces growth too).
                    for row in stride(from: 1000 + worker, to: 4000, by: 2) {
                        try index.insert(Array(data[row * dim..<(row + 1) * dim]), label: UInt64(row))
                    }
                case 2:
                    for row in stride(from: 0, to: 1000, by: 4) { try index.remove(label: UInt64(row)) }
                default:
                    for qi in 0..<400 {
                        let row = (qi * 7) % 4000
                        let hits = try index.search(Array(data[row * dim..<(row + 1) * dim]), k: 5).hits
                        if hits.isEmpty { failures.add(1, ordering: .relaxed) }
                    }
                }
            } catch {
                failures.add(1, ordering: .relaxed)
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(index.count == 4000 - 250)
        for row in stride(from: 0, to: 1000, by: 4) { #expect(!index.contains(label: UInt64(row))) }
        let hits = try index.search(Array(data[0..<dim]), k: 20, searchEffort: 100).hits
        #expect(hits.allSatisfy { !($0.label < 1000 && $0.label % 4 == 0) })
        index.repair()
        #expect(index.checkInvariants() == [])
    }

    /// Repairs run beside searches (only freeing the slots excludes them): searches during repeated removes and
    /// repairs, with an inserter waiting its turn, never fail, never return a label removed before they began,
    /// and the graph is sound afterwards.
    @Test func searchesRunBesideRepairs() throws {
        let dim = 12
        let data = clusteredVectors(count: 6000, dim: dim, seed: 71)
        let index = try HNSWIndex(parameters: HNSWParameters(dimensions: dim, constructionEffort: 60))
        _ = try index.insert(contentsOf: Array(data[0..<4000 * dim]), labels: (0..<4000).map(UInt64.init), threads: 2)
        let failures = Atomic<Int>(0)
        let removedBefore = Atomic<Int>(0)  // rows 0..<removedBefore × 8 step 2 are gone
        let done = Atomic<Bool>(false)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                switch worker {
                case 0:
                    for round in 0..<8 {
                        for row in stride(from: round * 500, to: (round + 1) * 500, by: 2) {
                            try index.remove(label: UInt64(row))
                        }
                        removedBefore.store(round + 1, ordering: .releasing)
                        index.repair()
                    }
                    done.store(true, ordering: .releasing)
                case 1:
                    for row in 4000..<6000 {
                        try index.insert(Array(data[row * dim..<(row + 1) * dim]), label: UInt64(row))
                    }
                default:
                    var qi = worker
                    while !done.load(ordering: .acquiring) {
                        let gone = removedBefore.load(ordering: .acquiring) * 500
                        let row = (qi * 7) % 4000
                        let hits = try index.search(Array(data[row * dim..<(row + 1) * dim]), k: 5).hits
                        if hits.isEmpty || hits.contains(where: { $0.label < UInt64(gone) && $0.label % 2 == 0 }) {
                            failures.add(1, ordering: .relaxed)
                        }
                        qi += 2
                    }
                }
            } catch {
                failures.add(1, ordering: .relaxed)
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(index.count == 6000 - 2000)
        #expect(index.pendingDeletes == 0)
        #expect(index.checkInvariants() == [])
    }

    /// A node is linked top level first; a search that reached it on an upper level before its level-0 list was
    /// written would stop there and return nothing. Each search here asks for the vector being inserted at that
    /// moment (so the descent heads for the new node) and must get k hits, which 1000 live nodes always hold.
    @Test func aNodeIsReachableOnlyOnceAllItsListsAreWritten() throws {
        let dim = 8
        let data = clusteredVectors(count: 4000, dim: dim, seed: 83)
        // M = 4: a quarter of the nodes reach level 1 and above, each with a long level-0 search after its upper lists.
        let index = try HNSWIndex(
            parameters: HNSWParameters(dimensions: dim, connectivity: 4, constructionEffort: 200))
        _ = try index.insert(contentsOf: Array(data[0..<1000 * dim]), labels: (0..<1000).map(UInt64.init))
        let inserting = Atomic<Int>(1000)
        let done = Atomic<Bool>(false)
        let short = Atomic<Int>(0)
        let searches = Atomic<Int>(0)
        let writer = Thread {
            for row in 1000..<4000 {
                inserting.store(row, ordering: .releasing)
                _ = try? index.insert(Array(data[row * dim..<(row + 1) * dim]), label: UInt64(row))
            }
            done.store(true, ordering: .releasing)
        }
        writer.start()
        while !done.load(ordering: .acquiring) {
            let row = inserting.load(ordering: .acquiring)
            let hits = try index.search(Array(data[row * dim..<(row + 1) * dim]), k: 10).hits
            if hits.count < 10 { short.add(1, ordering: .relaxed) }
            searches.add(1, ordering: .relaxed)
        }
        #expect(
            short.load(ordering: .relaxed) == 0,
            "\(short.load(ordering: .relaxed)) of \(searches.load(ordering: .relaxed)) searches came back short")
        #expect(searches.load(ordering: .relaxed) > 100)
    }

    @Test func parallelBuildKeepsRecall() throws {
        let dim = 16
        let data = clusteredVectors(count: 5000, dim: dim, seed: 61)
        let queries = clusteredVectors(count: 60, dim: dim, seed: 62)
        let index = try buildIndex(data, dim: dim, threads: 4)
        #expect(index.checkInvariants() == [])
        let serial = try buildIndex(data, dim: dim, threads: 1)
        let parallelRecall = try meanRecall(index, data: data, queries: queries, dim: dim, ef: 128)
        let serialRecall = try meanRecall(serial, data: data, queries: queries, dim: dim, ef: 128)
        #expect(parallelRecall >= 0.95)
        #expect(parallelRecall >= serialRecall - 0.02, "parallel \(parallelRecall), serial \(serialRecall)")
    }
}
