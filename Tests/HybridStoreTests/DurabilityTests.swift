import Foundation
import Synchronization
import Testing
import HybridStore

@Suite struct DurabilityTests {
    static func snapshotFiles(_ tmp: TemporaryStore) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [])
            .filter { $0.hasSuffix(".hsnap") }.map { tmp.path + "/" + $0 }
    }

    /// Reopens `tmp` and returns the store and the recovery phases reported per collection.
    static func reopen(_ tmp: TemporaryStore) throws -> (HybridStore, [RecoveryProgress]) {
        let seen = Mutex<[RecoveryProgress]>([])
        let store = try tmp.open { $0.recoveryProgress = { p in seen.withLock { $0.append(p) } } }
        return (store, seen.withLock { $0 })
    }

    @Test func reopenLoadsTheSnapshotAndReplaysTheLog() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        var store = try tmp.open()
        let chunks = try store.createCollection("chunks", schema: chunkSchema)
        let vectors = try fill(store, chunks, count: 200)
        try store.checkpoint()
        #expect(Self.snapshotFiles(tmp).count == 1)
        try store.write { tx in
            try tx.delete(["r1", "r2"], from: chunks)
            try tx.upsert("r3", into: chunks, vector: Array(repeating: 5, count: 8), values: [:])
            try tx.insert("late", into: chunks, vector: Array(repeating: -5, count: 8), values: ["tenant": .text("x")])
        }
        let expected = try store.search(chunks, near: vectors[4], k: 10, searchEffort: 100, returning: ["body"])
        store.close()

        let (reopened, progress) = try Self.reopen(tmp)
        store = reopened
        #expect(progress.contains { $0.phase == .replaying && $0.total == 4 })
        #expect(!progress.contains { $0.phase == .rebuilding })
        let chunks2 = try store.collection("chunks")
        #expect(try store.count(chunks2) == 199)
        #expect(try store.search(chunks2, near: vectors[4], k: 10, searchEffort: 100, returning: ["body"]) == expected)
        #expect(try store.search(chunks2, near: Array(repeating: 5, count: 8), k: 1).first?.id == "r3")
        #expect(try store.search(chunks2, near: Array(repeating: -5, count: 8), k: 1).first?.id == "late")
        #expect(try store.verify().isConsistent)
    }

    @Test(arguments: ["missing", "truncated", "bitflip", "foreign"])
    func badSnapshotsAreRebuilt(damage: String) throws {
        let tmp = TemporaryStore(damage)
        defer { tmp.cleanup() }
        var store = try tmp.open()
        let chunks = try store.createCollection("chunks", schema: chunkSchema)
        let vectors = try fill(store, chunks, count: 150)
        try store.checkpoint()
        let expected = try store.search(chunks, near: vectors[9], k: 5, searchEffort: 150)
        store.close()
        let file = try #require(Self.snapshotFiles(tmp).first)
        var bytes = try #require(FileManager.default.contents(atPath: file))
        switch damage {
        case "missing": try FileManager.default.removeItem(atPath: file)
        case "truncated": try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: file))
        case "bitflip":
            bytes[bytes.count / 3] ^= 0x10
            try bytes.write(to: URL(fileURLWithPath: file))
        default: try Data("not a snapshot at all, just text".utf8).write(to: URL(fileURLWithPath: file))
        }
        let (reopened, progress) = try Self.reopen(tmp)
        store = reopened
        let rebuild = try #require(progress.first { $0.phase == .rebuilding })
        #expect(rebuild.total == 150)
        #expect(progress.last?.phase == .ready && progress.last?.done == 150)
        let c = try store.collection("chunks")
        #expect(try store.search(c, near: vectors[9], k: 5, searchEffort: 150).map(\.id) == expected.map(\.id))
        #expect(try store.verify().isConsistent)
    }

    /// A snapshot older than the trimmed change log, and one written for other parameters, are rebuilt too.
    @Test func staleAndMismatchedSnapshotsAreRebuilt() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        var store = try tmp.open()
        let a = try store.createCollection("a", schema: chunkSchema)
        let b = try store.createCollection("b", schema: Schema(vector: VectorSpec(dimensions: 4), id: .integer))
        try fill(store, a, count: 50)
        try store.write { tx in for i in 0..<20 { try tx.insert(.int(Int64(i)), into: b, vector: [Float(i), 0, 0, 1]) }
        }
        try store.checkpoint()
        // a's snapshot is the larger file (8-d × 50 rows against 4-d × 20).
        func files() throws -> (a: String, b: String) {
            let bySize = try Self.snapshotFiles(tmp).sorted {
                try FileManager.default.attributesOfItem(atPath: $0)[.size] as! Int
                    > FileManager.default.attributesOfItem(atPath: $1)[.size] as! Int
            }
            return (bySize[0], bySize[1])
        }
        let (aFile, bFile) = try files()
        let old = try #require(FileManager.default.contents(atPath: aFile))
        try store.write { tx in
            try tx.delete(["r1"], from: a)
            try tx.insert("late", into: a, vector: Array(repeating: 9, count: 8), values: ["tenant": .text("x")])
        }
        try store.checkpoint()  // trims the log past the old snapshot
        store.close()
        try old.write(to: URL(fileURLWithPath: aFile))  // stale
        try FileManager.default.removeItem(atPath: bFile)
        try FileManager.default.copyItem(atPath: aFile, toPath: bFile)  // other parameters
        let (reopened, progress) = try Self.reopen(tmp)
        store = reopened
        let reasons = progress.filter { $0.phase == .rebuilding && $0.done == 0 }.map {
            "\($0.collection): \($0.reason ?? "")"
        }.sorted()
        #expect(
            reasons == [
                "a: snapshot is older than the trimmed change log", "b: snapshot parameters differ from the schema",
            ])
        let a2 = try store.collection("a")
        #expect(try store.search(a2, near: Array(repeating: 9, count: 8), k: 1).first?.id == "late")
        #expect(try store.get(["r1"], from: a2).isEmpty)
        #expect(try store.count(try store.collection("b")) == 20)
        #expect(try store.verify().isConsistent)
    }

    @Test func secondOpenIsLocked() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        #expect(errorCode { _ = try tmp.open() } == .storeLocked)
        store.close()
        let again = try tmp.open()
        again.close()
    }

    @Test func corruptForeignAndNewerDatabasesAreRejected() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        try FileManager.default.createDirectory(atPath: tmp.path, withIntermediateDirectories: true)
        let db = tmp.path + "/store.sqlite"
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: db))
        #expect(errorCode { _ = try tmp.open() } == .corruptFile)

        // A real SQLite database of someone else's.
        try FileManager.default.removeItem(atPath: db)
        try runSQLite(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        #expect(errorCode { _ = try tmp.open() } == .corruptFile)

        // A HybridStore database from a newer format version.
        try FileManager.default.removeItem(atPath: db)
        let store = try tmp.open()
        store.close()
        try runSQLite(db, "UPDATE hs_meta SET value = 99 WHERE key = 'format_version';")
        #expect(errorCode { _ = try tmp.open() } == .newerFormat)

        // A damaged page inside an otherwise valid store.
        try FileManager.default.removeItem(atPath: tmp.path)
        let s2 = try tmp.open()
        try fill(s2, try s2.createCollection("chunks", schema: chunkSchema), count: 400)
        s2.close()
        var bytes = try #require(FileManager.default.contents(atPath: db))
        for i in stride(from: 4096, to: bytes.count, by: 1) { bytes[i] = 0xA5 }
        try bytes.write(to: URL(fileURLWithPath: db))
        #expect(
            errorCode {
                let s = try tmp.open(); _ = try s.verify()
            } == .corruptFile)
    }

    @Test func backgroundCheckpointRunsByPolicyAndTrimsTheLog() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open { $0.checkpointEveryChanges = 100 }
        let chunks = try store.createCollection("chunks", schema: chunkSchema)
        try fill(store, chunks, count: 150)
        // The checkpoint runs on the store's own queue; wait for it by closing.
        store.close()
        #expect(Self.snapshotFiles(tmp).count == 1)
        #expect(try changeLogLength(tmp.path + "/store.sqlite") == 0)
        let (reopened, progress) = try Self.reopen(tmp)
        #expect(progress.contains { $0.phase == .replaying && $0.total == 0 })
        #expect(try reopened.verify().isConsistent)
        #expect(reopened.lastBackgroundError == nil)
    }

    @Test func readersRunWhileAWriterWrites() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let chunks = try store.createCollection("chunks", schema: chunkSchema)
        let vectors = try fill(store, chunks, count: 300)
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                if worker == 0 {
                    for round in 0..<30 {
                        try store.write { tx in
                            try tx.delete([.string("r\(round)")], from: chunks)
                            try tx.upsert(
                                .string("w\(round)"), into: chunks, vector: vectors[round].map { -$0 },
                                values: ["tenant": .text("acme"), "body": .text("w")])
                        }
                    }
                } else {
                    for i in 0..<150 {
                        let hits = try store.search(
                            chunks, near: vectors[(i * 7 + worker) % 300], k: 10, returning: ["body"])
                        if hits.isEmpty || hits.contains(where: { $0.values["body"] == nil }) {
                            failures.add(1, ordering: .relaxed)
                        }
                    }
                }
            } catch {
                failures.add(1, ordering: .relaxed)
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(try store.count(chunks) == 300)
        #expect(try store.verify().isConsistent)
    }
}

/// Runs SQL through the sqlite3 library on a closed store's database (for tests that tamper with it).
func runSQLite(_ path: String, _ sql: String) throws {
    let c = try TestDatabase(path)
    try c.execute(sql)
}

func changeLogLength(_ path: String) throws -> Int {
    try TestDatabase(path).count("SELECT count(*) FROM hs_changes")
}
