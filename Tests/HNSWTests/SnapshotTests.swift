import Foundation
import Testing
import TestSupport
import HNSW

@Suite struct SnapshotTests {
    static func temporaryPath(_ name: String) -> String { TestSupport.temporaryPath("hnsw-" + name, suffix: ".hsnap") }

    static func sample(metric: Metric = .l2) throws -> (HNSWIndex, [Float]) {
        let data = clusteredVectors(count: 1500, dim: 10, seed: 71)
        let index = try buildIndex(data, dim: 10, metric: metric)
        for row in stride(from: 0, to: 1500, by: 10) { try index.remove(label: UInt64(row)) }
        return (index, data)
    }

    @Test(arguments: Metric.allCases)
    func roundTripGivesIdenticalResults(metric: Metric) throws {
        let (index, data) = try Self.sample(metric: metric)
        let path = Self.temporaryPath("rt")
        defer { unlink(path) }
        try index.save(to: path)
        let loaded = try HNSWIndex.load(from: path)
        #expect(loaded.parameters == index.parameters)
        #expect(loaded.count == index.count)
        #expect(loaded.pendingDeletes == index.pendingDeletes)
        #expect(loaded.checkInvariants() == [])
        for qi in 0..<40 {
            let q = Array(data[qi * 10..<qi * 10 + 10])
            #expect(try loaded.search(q, k: 10, searchEffort: 50).hits == index.search(q, k: 10, searchEffort: 50).hits)
        }
        // The loaded index keeps working: inserts reuse repaired slots, deletes apply.
        loaded.repair()
        try loaded.insert(Array(repeating: 0.25, count: 10), label: 123_456)
        #expect(loaded.contains(label: 123_456))
        #expect(loaded.checkInvariants() == [])
    }

    @Test func truncatedFilesAreCorrupt() throws {
        let (index, _) = try Self.sample()
        let path = Self.temporaryPath("trunc")
        defer { unlink(path) }
        try index.save(to: path)
        let bytes = try #require(FileManager.default.contents(atPath: path))
        for cut in [bytes.count - 1, bytes.count - 9, bytes.count / 2, 70, 63, 20] {
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: path))
            #expect(Self.loadError(path) == .corruptFile, "cut at \(cut)")
        }
        try (bytes + [0]).write(to: URL(fileURLWithPath: path))
        #expect(Self.loadError(path) == .corruptFile, "trailing byte")
    }

    @Test func bitFlipsAreCorrupt() throws {
        let (index, _) = try Self.sample()
        let path = Self.temporaryPath("flip")
        defer { unlink(path) }
        try index.save(to: path)
        let original = try #require(FileManager.default.contents(atPath: path))
        var rng = SplitMix64(seed: 5)
        var offsets = [9, 12, 16, 20, 28, 48, 52, 64, original.count - 5, original.count - 1]
        offsets += (0..<40).map { _ in Int.random(in: 64..<original.count, using: &rng) }
        for offset in offsets {
            var bytes = original
            bytes[offset] ^= 1 << UInt8(offset % 8)
            try bytes.write(to: URL(fileURLWithPath: path))
            let code = Self.loadError(path)
            #expect(code == .corruptFile || code == .newerFormat, "flip at \(offset) gave \(String(describing: code))")
        }
    }

    @Test func foreignAndNewerFilesAreRejected() throws {
        let path = Self.temporaryPath("foreign")
        defer { unlink(path) }
        try Data("SQLite format 3\0 and then some more bytes to pass the header size check...........".utf8)
            .write(to: URL(fileURLWithPath: path))
        #expect(Self.loadError(path) == .foreignFile)
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(Self.loadError(path) == .foreignFile)
        #expect(Self.loadError(path + ".missing") == .io)

        let (index, _) = try Self.sample()
        try index.save(to: path)
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[8] = 2  // format version 2
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(Self.loadError(path) == .newerFormat)
    }

    @Test func failedSaveLeavesPreviousFile() throws {
        let (index, _) = try Self.sample()
        #expect(throws: HNSWError.self) { try index.save(to: "/nonexistent-dir/x.hsnap") }
    }

    static func loadError(_ path: String) -> HNSWError.Code? {
        do {
            _ = try HNSWIndex.load(from: path)
            return nil
        } catch {
            return error.code
        }
    }
}
