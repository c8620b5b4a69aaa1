import Foundation
import Testing
import HNSW

/// Snapshots the fuzzer forged (a valid checksum over impossible contents) are `corruptFile`, never a crash.
/// Each file under Tests/Fuzz/Corpus/snapshot/crash-* is one input that crashed the loader or the first
/// search after it; the first byte says whether to recompute the checksum (odd) over the rest, as the fuzz
/// target does.
@Suite struct ForgedSnapshotTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fuzz/Corpus/snapshot").standardizedFileURL.path

    static var crashes: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: corpus)) ?? []).filter { $0.hasPrefix("crash-") }
            .sorted()
    }

    @Test func everyRecordedCrashIsPresent() {
        #expect(Self.crashes.count >= 2, "\(Self.corpus)")
    }

    @Test(arguments: crashes)
    func forgedSnapshotIsCorrupt(_ name: String) throws {
        let input = try Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/" + name))
        var bytes = [UInt8](input.dropFirst())
        if input.first! & 1 == 1, bytes.count >= 72 {
            let crc = bytes.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<bytes.count - 8])) }
            withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(bytes.count - 8..<bytes.count - 4, with: $0) }
        }
        let path = SnapshotTests.temporaryPath("forged")
        defer { unlink(path) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            let index = try HNSWIndex.load(from: path)
            Issue.record("a forged snapshot loaded: \(index.count) nodes")
        } catch {
            #expect(error.code == .corruptFile, "\(error)")
        }
    }
}
