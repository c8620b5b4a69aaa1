import Foundation
import Testing
import HybridStore

/// The async API: the same answers as the synchronous calls, run on the store's own threads, and stopped by
/// task cancellation (a cancelled call throws `CancellationError` and changes nothing).
@Suite struct AsyncAPITests {
    @Test func asyncCallsAnswerAsTheSynchronousOnes() async throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        let vectors = try fill(store, c, count: 400)
        let filter = try store.parseFilter("tenant = 'acme' AND year >= 2010")
        for q in vectors.prefix(20) {
            let sync: [SearchHit] = try { try store.search(c, near: q, k: 5, where: filter, returning: ["year"]) }()
            let async = try await store.search(c, near: q, k: 5, where: filter, returning: ["year"])
            #expect(WorkerPool.current == nil)
            #expect(async == sync)
        }
        let syncRows: [Row] = try { try store.get([.string("r1"), .string("r2")], from: c) }()
        #expect(try await store.get([.string("r1"), .string("r2")], from: c) == syncRows)
        #expect(try await store.count(c) == 400)
        #expect(try await store.count(c, where: filter) == ((try? { try store.count(c, where: filter) }()) ?? -1))

        // A write runs on the store's writer thread and is seen by the next read.
        let thread = try await store.write { tx -> String in
            try tx.insert(.string("new"), into: c, vector: vectors[0], values: ["tenant": .text("acme")])
            return WorkerPool.current ?? "(not a store thread)"
        }
        #expect(thread == "hybridstore-writer")
        #expect(try await store.count(c) == 401)
        #expect(try await store.onReaderThread { _ in WorkerPool.current } == "hybridstore-reader")
        let hits = try await store.search(c, near: vectors[0], k: 2)
        #expect(Set(hits.map(\.id)) == [.string("r0"), .string("new")])
    }

    @Test func manyConcurrentCallersGetTheirOwnAnswers() async throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open { $0.readerThreads = 2 }
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        let vectors = try fill(store, c, count: 300)
        let expected: [[RowID]] = try vectors.prefix(64).map { q in try store.search(c, near: q, k: 3).map(\.id) }
        let answers = try await withThrowingTaskGroup(of: (Int, [RowID]).self) { group in
            for (i, q) in vectors.prefix(64).enumerated() {
                group.addTask { (i, try await store.search(c, near: q, k: 3).map(\.id)) }
            }
            var answers: [Int: [RowID]] = [:]
            for try await (i, ids) in group { answers[i] = ids }
            return answers
        }
        for i in expected.indices { #expect(answers[i] == expected[i]) }
    }

    @Test func aQueryCancelledWhileQueuedThrowsCancellationError() async throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open { $0.readerThreads = 1 }
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        let vectors = try fill(store, c, count: 100)
        // The one reader thread is busy until `release` opens, so the search waits in the queue.
        let release = Gate()
        let started = Gate()
        let busy = Task {
            try await store.onReaderThread { _ in
                started.open()
                release.wait()
            }
        }
        // Both are tasks: without this the search could reach the thread first (seen under TSan in CI).
        while !started.opened { try await Task.sleep(for: .milliseconds(1)) }
        let search = Task { try await store.search(c, near: vectors[0], k: 3) }
        try await Task.sleep(for: .milliseconds(50))
        search.cancel()
        release.open()
        try await busy.value
        await #expect(throws: CancellationError.self) { try await search.value }
        // The store still answers.
        #expect(try await store.search(c, near: vectors[0], k: 1).first?.id == .string("r0"))
    }

    @Test func aWriteCancelledBeforeItStartsWritesNothing() async throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        let vectors = try fill(store, c, count: 10)
        let release = Gate()
        let busy = Task { try await store.onWriterThread { _ in release.wait() } }
        let write = Task {
            try await store.write { tx in
                try tx.insert(.string("late"), into: c, vector: vectors[0], values: ["tenant": .text("acme")])
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        write.cancel()
        release.open()
        try await busy.value
        await #expect(throws: CancellationError.self) { try await write.value }
        #expect(try await store.count(c) == 10)
        #expect(try await store.get([.string("late")], from: c).isEmpty)
    }

    @Test func aRaisedFlagStopsAQueryBetweenItsSteps() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection(
            "docs",
            creatingIfMissing: Schema(
                vector: VectorSpec(dimensions: 8, metric: .l2), id: .string,
                columns: [.text("tenant", filterable: true), .text("body", searchable: true)]))
        let vectors = randomVectors(50, dim: 8, seed: 3)
        try store.write { tx in
            for (i, v) in vectors.enumerated() {
                try tx.insert(
                    .string("r\(i)"), into: c, vector: v, values: ["tenant": .text("acme"), "body": .text("word \(i)")])
            }
        }
        var options = QueryOptions()
        options.cancellation = CancellationFlag()
        options.cancellation?.cancel()
        #expect(
            errorCode { _ = try store.query(c, near: vectors[0], k: 3, where: nil, options: options) } == .cancelled)
        #expect(
            errorCode {
                _ = try store.retrieve(c, text: TextQuery("word"), near: vectors[0], k: 3, options: options)
            } == .cancelled)
        // Without the flag raised the same calls answer.
        options.cancellation = CancellationFlag()
        #expect(try store.query(c, near: vectors[0], k: 3, where: nil, options: options).hits.count == 3)
    }
}

/// A one-shot gate: `wait()` blocks a thread until `open()`.
final class Gate: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): `isOpen` is only touched under `condition`.
    private let condition = NSCondition()
    private var isOpen = false

    func wait() {
        condition.lock()
        while !isOpen { condition.wait() }
        condition.unlock()
    }

    var opened: Bool {
        condition.lock()
        defer { condition.unlock() }
        return isOpen
    }

    func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }
}
