import Foundation
import Testing
import HybridStore

/// Kill -9 a writer at random moments (some while it checkpoints), reopen, and check that every
/// acknowledged batch is there in full, no batch is partial, verify() finds nothing, and search returns
/// only existing rows.
@Suite struct CrashTests {
    static var writerPath: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("hybridstore-crash-writer").path
    }

    @Test func killedWritersLoseNothingAcknowledged() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let ackPath = tmp.path + ".acks"
        defer { unlink(ackPath) }
        try #require(FileManager.default.isExecutableFile(atPath: Self.writerPath), "build hybridstore-crash-writer")
        var rng = SplitMix64(seed: 2026)
        var killsDuringCheckpoint = 0
        var lastAcked: Int64 = 0
        for round in 0..<24 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.writerPath)
            process.arguments = [tmp.path, ackPath, "\(round + 1)"]
            process.standardError = FileHandle.nullDevice
            try process.run()
            let waitForCheckpoint = round % 2 == 1
            let deadline = Date().addingTimeInterval(Double.random(in: 0.05...0.6, using: &rng))
            while Date() < deadline || waitForCheckpoint {
                if waitForCheckpoint, let last = Self.acks(ackPath).last, last == "checkpoint",
                    Self.acks(ackPath).filter({ $0 == "checkpoint" }).count > killsDuringCheckpoint + round / 2
                {
                    break
                }
                if !process.isRunning { break }
                usleep(200)
                if Date() > deadline.addingTimeInterval(5) { break }
            }
            if Self.acks(ackPath).last == "checkpoint" { killsDuringCheckpoint += 1 }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "round \(round): the writer died by itself")

            let acked = Self.acks(ackPath).compactMap { Int64($0) }
            lastAcked = acked.max() ?? 0
            let store = try tmp.open()
            defer { store.close() }
            let collection = try store.collection("crash")
            let report = try store.verify()
            #expect(
                report.isConsistent,
                "round \(round): \(report.collections.flatMap(\.mismatches).prefix(5)) \(report.tenantMismatches.prefix(5))"
            )
            try Self.checkBatches(store, collection, lastAcked: lastAcked, round: round)
            for hit in try store.search(collection, near: Array(repeating: 0.5, count: 8), k: 20, returning: ["batch"])
            {
                #expect(hit.values["batch"] != nil, "round \(round): search returned a row that does not exist")
            }
        }
        #expect(killsDuringCheckpoint >= 3, "only \(killsDuringCheckpoint) kills landed during a checkpoint")
        #expect(lastAcked >= 10)
    }

    static func acks(_ path: String) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    /// Batch b has ids b*1000+i, i < 50; batch b+3 deletes its i % 5 == 0 rows. Batches commit in order,
    /// and a writer may commit one batch it never acknowledges before it dies (the next writer resumes after
    /// it), so: the committed batches are a prefix 1...c with c ≥ the last acknowledged; each is whole; its
    /// deletable rows are gone exactly when batch b+3 committed; nothing exists beyond c.
    static func checkBatches(_ store: HybridStore, _ collection: CollectionRef, lastAcked: Int64, round: Int) throws {
        func items(_ b: Int64) throws -> Set<Int64> {
            let rows = try store.get(
                (0..<50).map { RowID.int(b * 1000 + Int64($0)) }, from: collection, returning: ["item"])
            return Set(
                rows.compactMap { row in
                    if case .integer(let item)? = row.values["item"] { return item } else { return nil }
                })
        }
        var committed: Int64 = 0
        while try items(committed + 1).contains(1) { committed += 1 }
        #expect(
            committed >= lastAcked, "round \(round): acknowledged batch \(lastAcked) lost (only \(committed) committed)"
        )
        for b in committed + 1...committed + 3 {
            #expect(try items(b).isEmpty, "round \(round): rows of uncommitted batch \(b) exist")
        }
        let kept = Set((0..<50).filter { $0 % 5 != 0 }.map(Int64.init))
        let deletable = Set(stride(from: 0, to: 50, by: 5).map(Int64.init))
        for b in Swift.stride(from: 1, through: committed, by: 1) {
            let present = try items(b)
            // The keyword index holds exactly the batch's committed rows (it commits with them).
            let found = try store.search(collection, text: TextQuery("batch\(b)"), k: 100)
            #expect(
                found.count == present.count,
                "round \(round): the keyword index finds \(found.count) rows of batch \(b), \(present.count) exist")
            #expect(
                kept.isSubset(of: present),
                "round \(round): batch \(b) is partial: lost \(kept.subtracting(present).sorted().prefix(5))")
            let deletedNow = deletable.subtracting(present)
            if b + 3 <= committed {
                #expect(deletedNow == deletable, "round \(round): batch \(b) keeps rows batch \(b + 3) deleted")
            } else {
                #expect(deletedNow.isEmpty, "round \(round): batch \(b) lost rows \(deletedNow.sorted())")
            }
        }
    }
}
