import Foundation
import HNSW
import QueryPlanner
#if canImport(Glibc)
import Glibc
#endif

// Opening a collection is a small state machine:
//
//   state        event                                   next
//   opening      snapshot loads, parameters match,        replaying
//                trimmed-through ≤ stamp ≤ last sequence
//   opening      snapshot missing, corrupt, foreign,      rebuilding
//                mismatched or stale
//   replaying    changed rows after the stamp applied     ready
//   rebuilding   every row inserted into a fresh index    ready
//
// The change log is only a shortcut: the rows table is the truth, so a replay reads each changed row's
// current state, and anything doubtful is rebuilt from the rows table.

extension HybridStore {
    func recoverAll(_ c: Connection) throws(HybridStoreError) {
        let (trimmed, last, entries) = try sqliteWork("reading the catalog") {
            () throws -> (Int64, Int64, [(Int64, String, String, String)]) in
            guard case .integer(let trimmed)? = try c.statement(SQL.readMeta).scalar([.text("log_trimmed_through")]),
                case .integer(let last)? = try c.statement(SQL.lastSeq).scalar()
            else { throw HybridStoreError(.corruptFile, "\(databasePath): catalog metadata missing") }
            let statement = try c.statement(SQL.listCollections)
            defer { statement.reset() }
            var entries: [(Int64, String, String, String)] = []
            while try statement.step() {
                guard case .text(let name) = statement.column(1), case .text(let schema) = statement.column(2),
                    case .text(let uuid) = statement.column(3)
                else { throw HybridStoreError(.corruptFile, "\(databasePath): malformed collection entry") }
                entries.append((statement.int64(0), name, schema, uuid))
            }
            return (trimmed, last, entries)
        }
        for (number, name, schemaText, uuid) in entries {
            let schema: Schema
            do {
                schema = try JSONDecoder().decode(Schema.self, from: Data(schemaText.utf8))
            } catch {
                throw HybridStoreError(
                    .corruptFile, "collection `\(name)`: stored schema does not decode (\(error))",
                    context: ["collection": name])
            }
            let s = CollectionState(
                number: number, name: name, schema: schema, uuid: uuid,
                index: try emptyIndex(schema, name))
            try recover(s, c, trimmedThrough: trimmed, lastSequence: last)
            catalog.withLock { $0[name] = s }
        }
    }

    private func emptyIndex(_ schema: Schema, _ name: String) throws(HybridStoreError) -> HNSWIndex {
        do throws(HNSWError) {
            return try HNSWIndex(parameters: schema.vector.hnswParameters)
        } catch {
            throw HybridStoreError(error, collection: name)
        }
    }

    private func recover(
        _ s: CollectionState, _ c: Connection, trimmedThrough: Int64, lastSequence: Int64
    )
        throws(HybridStoreError)
    {
        let path = snapshotPath(s)
        var loaded: (HNSWIndex, Int64)? = nil
        var reason = "no snapshot"
        if FileManager.default.fileExists(atPath: path) {
            do throws(HNSWError) {
                let (index, stamp) = try HNSWIndex.loadStamped(from: path)
                let p = index.parameters, q = s.schema.vector.hnswParameters
                if (p.dimensions, p.metric, p.connectivity, p.constructionEffort)
                    != (q.dimensions, q.metric, q.connectivity, q.constructionEffort)
                {
                    reason = "snapshot parameters differ from the schema"
                } else if Int64(stamp) < trimmedThrough {
                    reason = "snapshot is older than the trimmed change log"
                } else if Int64(stamp) > lastSequence {
                    reason = "snapshot is newer than the database"
                } else {
                    reason = ""
                    loaded = (index, Int64(stamp))
                }
            } catch {
                reason = "snapshot unusable: \(error.message)"
            }
        }
        if let (index, stamp) = loaded {
            try replay(s, into: index, after: stamp, c)
        } else {
            try rebuild(s, connection: c, reason: reason)
            // Write the rebuilt index back (over a bad snapshot, or where there was none), so the next open
            // loads it instead of rebuilding again. It covers every change through `lastSequence`. Best
            // effort: a failure here leaves the store as usable as before, and the next checkpoint retries.
            if mode == .readWrite, s.lock.read({ s.index.count }) > 0 || FileManager.default.fileExists(atPath: path) {
                do throws(HNSWError) {
                    try s.lock.read { s.index }.save(to: path, stamp: UInt64(max(lastSequence, 0)))
                } catch {
                    unsafe unlink(path)
                }
            }
        }
        try loadColdTier(s, c)
    }

    /// Applies rows changed after `stamp` (their current state in the rows table) to a loaded index.
    private func replay(
        _ s: CollectionState, into index: HNSWIndex, after stamp: Int64, _ c: Connection
    )
        throws(HybridStoreError)
    {
        let vectors = try sqliteWork("replaying the change log of `\(s.name)`") { () throws -> [(UInt64, [Float]?)] in
            let changed = try c.statement(SQL.changedRows)
            defer { changed.reset() }
            try changed.bind([.integer(s.number), .integer(stamp)])
            var rows: [Int64] = []
            while try changed.step() { rows.append(changed.int64(0)) }
            let read = try c.statement(s.table.vectorForRow)
            var result: [(UInt64, [Float]?)] = []
            for row in rows {
                read.reset()
                try read.bind(.integer(row), at: 1)
                // A missing row was deleted; an empty vector is a cold row: neither belongs in the index.
                let vector: [Float]? =
                    unsafe try read.step() ? read.withBlob(0) { unsafe $0.isEmpty ? nil : floats(from: $0) } : nil
                result.append((UInt64(row), vector))
            }
            read.reset()
            return result
        }
        let progress = recoveryReporter
        progress?(RecoveryProgress(collection: s.name, phase: .replaying, done: 0, total: vectors.count))
        do throws(HNSWError) {
            var labels: [UInt64] = []
            var flat: [Float] = []
            for (label, vector) in vectors {
                if index.contains(label: label) { try index.remove(label: label) }
                if let vector {
                    labels.append(label)
                    flat.append(contentsOf: vector)
                }
            }
            _ = try index.insert(committed: flat, labels: labels, threads: configuration.buildThreads)
        } catch {
            throw HybridStoreError(error, collection: s.name)
        }
        if !vectors.isEmpty { index.repair() }  // unlink replayed deletes, reconnect nodes the inserts orphaned
        progress?(RecoveryProgress(collection: s.name, phase: .replaying, done: vectors.count, total: vectors.count))
        try installIDs(s, index: index, c)
        progress?(RecoveryProgress(collection: s.name, phase: .ready, done: vectors.count, total: vectors.count))
    }

    /// Where recovery progress goes: the configuration's callback and the log (nil when neither wants it).
    var recoveryReporter: (@Sendable (RecoveryProgress) -> Void)? {
        let callback = configuration.recoveryProgress
        guard let observer, observer.logger != nil else { return callback }
        return { progress in
            observer.recovery(progress)
            callback?(progress)
        }
    }

    /// Builds a fresh index from every row of the collection.
    func rebuild(
        _ s: CollectionState, connection: Connection? = nil, reason: String = "requested"
    )
        throws(HybridStoreError)
    {
        func work(_ c: Connection) throws(HybridStoreError) {
            let total = try sqliteWork("counting `\(s.name)`") { () throws -> Int in
                guard case .integer(let n)? = try c.statement(s.table.count).scalar() else { return 0 }
                return Int(n)
            }
            let progress = recoveryReporter
            progress?(RecoveryProgress(collection: s.name, phase: .rebuilding, done: 0, total: total, reason: reason))
            let index = try emptyIndex(s.schema, s.name)
            let chunk = 50_000
            var labels: [UInt64] = []
            var flat: [Float] = []
            labels.reserveCapacity(min(total, chunk))
            flat.reserveCapacity(min(total, chunk) * s.schema.vector.dimensions)
            var done = 0
            func flush() throws(HybridStoreError) {
                do throws(HNSWError) {
                    _ = try index.insert(committed: flat, labels: labels, threads: configuration.buildThreads)
                } catch {
                    throw HybridStoreError(error, collection: s.name)
                }
                done += labels.count
                labels.removeAll(keepingCapacity: true)
                flat.removeAll(keepingCapacity: true)
                progress?(
                    RecoveryProgress(collection: s.name, phase: .rebuilding, done: done, total: total, reason: reason))
            }
            let statement = try sqliteWork("reading `\(s.name)`") { try c.statement(s.table.allVectors) }
            defer { statement.reset() }
            while try sqliteWork("reading `\(s.name)`", { try statement.step() }) {
                labels.append(UInt64(statement.int64(0)))
                unsafe statement.withBlob(1) { unsafe appendFloats($0, to: &flat) }
                if labels.count == chunk { try flush() }
            }
            if !labels.isEmpty { try flush() }
            index.repair()  // reconnect any node the chunked inserts left without an in-link
            try installIDs(s, index: index, c)
            progress?(RecoveryProgress(collection: s.name, phase: .ready, done: done, total: total, reason: reason))
        }
        if let connection {
            try work(connection)
        } else {
            try sqliteWork("rebuilding `\(s.name)`") { try withWriter { c, _ in try work(c) } }
            return
        }
    }

    /// Reads every row's id and filterable values and installs `index` with them into the collection.
    private func installIDs(_ s: CollectionState, index: HNSWIndex, _ c: Connection) throws(HybridStoreError) {
        let positions = s.schema.columns.indices.filter { s.schema.columns[$0].filterable }
        let rows = try sqliteWork("reading ids of `\(s.name)`") {
            () throws -> [(node: UInt32, id: RowID, values: [String: Value])] in
            let statement = try c.statement(s.table.selectAll(positions))
            defer { statement.reset() }
            var rows: [(node: UInt32, id: RowID, values: [String: Value])] = []
            while try statement.step() {
                guard let node = index.node(forLabel: UInt64(statement.int64(0))) else { continue }
                let row = readRow(statement, positions: positions, vector: false, s)
                rows.append((node, row.id, row.values))
            }
            return rows
        }
        s.replaceIndex(index, rows: rows)
    }

    /// Writes every collection's index snapshot (atomically: temp file, fsync, rename), stamped with the
    /// change-log sequence it covers, then trims the log up to that sequence. Applies tier policies and
    /// compacts mostly-dead cold blocks first.
    /// Runs in the background by itself every `Configuration.checkpointEveryChanges` changes.
    /// - Throws: `io` when a snapshot cannot be written (the log is then kept), `sqlite`.
    /// - Complexity: O(index sizes); writers wait meanwhile, readers do not.
    public func checkpoint() throws(HybridStoreError) {
        let started = nowNanos()
        defer {
            if let observer {
                observer.checkpointed(nanos: nowNanos() - started, statistics: observer.metrics ? allStatistics() : [])
            }
        }
        try flushUsage()
        try foldUsageLog()
        try sqliteWork("applying tier policies") { try applyTierPolicies() }
        _ = try sqliteWork("compacting cold blocks") { try compactColdTier() }
        try sqliteWork("checkpointing") {
            try withWriter { c, changesSince in
                guard case .integer(let sequence)? = try c.statement(SQL.lastSeq).scalar() else { return }
                let states = catalog.withLock { Array($0.values) }
                // Recall curves on the collection's own data, where none exist or the rows changed by a fifth:
                // saved below with the calibration, so a fresh process plans with them.
                for s in states where configuration.calibrateAtCheckpoint && calibrationDue(s) { calibrateAtBuild(s) }
                for s in states {
                    let index = s.lock.read { s.index }
                    index.repair()  // unlink deletes, reconnect any node that lost its last in-link
                    do throws(HNSWError) {
                        try index.save(to: snapshotPath(s), stamp: UInt64(sequence))
                    } catch {
                        throw HybridStoreError(error, collection: s.name)
                    }
                }
                // Keyword indexes: each write transaction adds a segment that every query must then consult; merging
                // them into one cuts a query's fixed cost (Benchmarks/README.md, "Keyword and hybrid search").
                // Where the change log moved by a tenth of the rows (at least 1,000) since the last merge.
                for s in states where !s.schema.searchablePositions.isEmpty {
                    let key = Value.text("text_optimized:\(s.number)")
                    let last: Int64 =
                        if case .integer(let v)? = try c.statement(SQL.readMeta).scalar([key]) { v } else { 0 }
                    guard case .integer(let rows)? = try c.statement(s.table.count).scalar(),
                        sequence - last >= max(1_000, rows / 10)
                    else { continue }
                    try c.transaction(immediate: true) {
                        try c.execute(s.table.optimizeText)
                        try c.statement(SQL.writeMeta).run([key, .integer(sequence)])
                    }
                }
                try c.transaction(immediate: true) {
                    for s in states {
                        try c.statement(SQL.setSnapshotSeq).run([.integer(s.number), .integer(sequence)])
                        // The effort calibration too, so a reopened store does not relearn it.
                        let calibration = s.calibration.withLock { $0 }
                        if calibration != RecallCalibration(), let json = try? JSONEncoder().encode(calibration) {
                            try c.statement(SQL.writeMeta).run([
                                .text("calibration:\(s.number)"),
                                .text(String(decoding: json, as: UTF8.self)),
                            ])
                        }
                    }
                    try c.statement(SQL.trimChanges).run([.integer(sequence)])
                    try c.statement(SQL.writeMeta).run([.text("log_trimmed_through"), .integer(sequence)])
                }
                changesSince = 0
                try c.execute(SQL.checkpointWAL)
            }
        }
    }
}

/// Decodes a little-endian float32 blob.
func floats(from raw: UnsafeRawBufferPointer) -> [Float] {
    var out: [Float] = []
    unsafe appendFloats(raw, to: &out)
    return out
}

/// Appends a little-endian float32 blob. (No `reserveCapacity` here: reserving the exact size on every call
/// defeats the array's geometric growth and turns a rebuild quadratic.)
func appendFloats(_ raw: UnsafeRawBufferPointer, to out: inout [Float]) {
    let n = raw.count / 4
    for i in 0..<n {
        unsafe out.append(
            Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))))
    }
}
