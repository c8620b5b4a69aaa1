import HNSW
import QueryPlanner

extension HybridStore {
    /// Runs `body` as one SQLite transaction (BEGIN IMMEDIATE … COMMIT) and, once COMMIT succeeded,
    /// updates the in-memory index. When `body` throws, the transaction is rolled back and the error is
    /// rethrown: nothing changes, neither in SQLite nor in the index.
    ///
    /// Writers are serialized; readers keep running.
    /// - Throws: what `body` throws when it is a `HybridStoreError` (the `WriteTransaction` methods throw
    ///   them), any other error of `body`'s wrapped as `aborted` (in `underlying`), or `sqlite` /
    ///   `corruptFile` when SQLite fails.
    public func write<R>(_ body: (WriteTransaction) throws -> R) throws(HybridStoreError) -> R {
        do { return try write(tenant: nil, body) } catch { throw HybridStoreError(thrownBy: error, in: "write") }
    }

    /// `write`, optionally scoped to a tenant (see `TenantScope.write`).
    func write<R>(tenant: String?, _ body: (WriteTransaction) throws -> R) throws -> R {
        let (result, due) = try withWriter { connection, changesSince -> (R, Bool) in
            let tx = WriteTransaction(store: self, connection: connection, tenant: tenant)
            let result: R
            // The transaction's last change-log sequence, registered with its rows before COMMIT (see
            // `ChangeEpochs`): from then until it is published, reads correct what memory shows of these rows.
            var sequence: Int64? = nil
            do {
                result = try connection.transaction(immediate: true) {
                    let result = try body(tx)
                    try tx.finish()
                    if tx.changeCount > 0, case .integer(let seq)? = try connection.statement(SQL.lastSeq).scalar() {
                        sequence = seq
                        epochs.begin(seq: seq, rows: tx.effects.mapValues { Set($0.keys) })
                    }
                    return result
                }
            } catch let error as SQLiteError {
                if sequence != nil { epochs.abandon() }
                throw HybridStoreError(error, while: "committing a write")
            } catch {
                if sequence != nil { epochs.abandon() }
                throw error
            }
            // The new vectors are linked before the publishing window opens, as pending nodes (traversed, never
            // returned): the window then holds only the flips readers can see, not the graph work.
            let linked = linkPending(tx.effects)
            publishGate.write {
                if let sequence { epochs.committed(seq: sequence) }
                for update in tx.beforePublish { update() }
                publish(tx.effects, connection, linked: linked)
                if let sequence { epochs.publish(through: sequence) }
            }
            for update in tx.onCommit { update() }
            if !tx.garbageBlocks.isEmpty {
                // Unreferenced already; should this fail, the next checkpoint's compaction drops them.
                try? connection.transaction(immediate: true) {
                    for id in tx.garbageBlocks { try connection.statement(SQL.deleteColdBlock).run([.integer(id)]) }
                }
            }
            foldUsageLogIfLarge(connection)
            changesSince += tx.changeCount
            let every = configuration.checkpointEveryChanges
            return (result, every > 0 && changesSince >= every)
        }
        if due { scheduleCheckpoint() }
        return result
    }

    /// Applies committed effects to the derived state. Caller holds the writer mutex, so the index always
    /// reflects exactly the committed transactions when the mutex is free. Should an index update fail
    /// (it validated everything before COMMIT, so only a bug could cause it), the collection's index is
    /// rebuilt from SQLite rather than left wrong.
    /// `linked`: per collection, the pending nodes `linkPending` made for rows, activated here.
    func publish(
        _ effects: [Int64: [Int64: WriteTransaction.Effect]], _ connection: Connection,
        linked: [Int64: [Int64: UInt32]] = [:]
    ) {
        let states = catalog.withLock { Dictionary(uniqueKeysWithValues: $0.values.map { ($0.number, $0) }) }
        for (number, rows) in effects {
            guard let s = states[number] else { continue }
            publishTextLengths(rows, to: s, connection)
            publishTextPostings(rows, to: s, connection)
            do {
                try publish(rows, to: s, linked: linked[number] ?? [:])
            } catch {
                backgroundError.withLock { $0 = error }
                try? rebuild(s, connection: connection, reason: "an index update failed: \(error.message)")
            }
        }
    }

    /// The new token counts of rows whose searchable text changed, read from the committed size records (when
    /// the collection's lengths are loaded; a row that cannot be read is forgotten, then ranked by FTS5's record).
    private func publishTextLengths(_ rows: [Int64: WriteTransaction.Effect], to s: CollectionState, _ c: Connection) {
        guard !s.schema.searchablePositions.isEmpty, s.lock.read({ s.textLengths.isLoaded }) else { return }
        // Deleted rows need nothing: row numbers are never reused, and a deleted row matches nothing.
        let changed = rows.filter { $0.value.text && !$0.value.deleted }
        guard !changed.isEmpty else { return }
        var counts: [(Int64, Int64?)] = []
        let lookup = try? c.statement(s.table.textLengthOfRow)
        for (row, _) in changed {
            guard let lookup, case .integer(let n)? = try? lookup.scalar([.integer(row)]) else {
                counts.append((row, nil))
                continue
            }
            counts.append((row, n))
        }
        s.lock.write { for (row, n) in counts { s.textLengths.set(row: row, tokens: n) } }
    }

    /// Brings the collection's posting lists (when loaded) up to the commit: rows whose searchable text changed
    /// are tokenized again from the committed rows (outside the lock), rows that went are taken out; then the
    /// lists take them under the exclusive lock. A row the effects call deleted may only have left the hot
    /// tier: it is read again like the others, and stays. Should this fail, the lists are dropped (the next
    /// keyword query loads them again).
    private func publishTextPostings(_ rows: [Int64: WriteTransaction.Effect], to s: CollectionState, _ c: Connection) {
        guard !s.schema.searchablePositions.isEmpty, s.lock.read({ s.textPostings != nil }) else { return }
        let changed = rows.filter { $0.value.text || $0.value.deleted }.keys.sorted()
        guard !changed.isEmpty else { return }
        let fresh = TextPostings()
        do {
            let statement = try c.statement(s.table.searchableTextOfRows)
            try statement.bind([.text("[" + changed.map(String.init).joined(separator: ",") + "]")])
            try fresh.index(
                statement, columns: s.schema.searchablePositions.count, tokenizer: s.schema.tokenizer.fts5Option,
                on: c)
            s.lock.write { s.textPostings?.replace(rows: changed, from: fresh) }
        } catch {
            s.lock.write { s.textPostings = nil }
        }
    }

    /// Links every new vector of committed effects into its collection's graph as a pending node (see
    /// `NodeState.pending`): searches traverse it but never return it, and its label is not yet registered, so a
    /// row whose vector changed keeps its old node meanwhile. Returns, per collection, the node of each row.
    /// A collection whose vectors cannot be inserted is left out (`publish` then inserts them itself, and fails
    /// as it would have). Caller holds the writer mutex, after COMMIT.
    private func linkPending(_ effects: [Int64: [Int64: WriteTransaction.Effect]]) -> [Int64: [Int64: UInt32]] {
        let states = catalog.withLock { Dictionary(uniqueKeysWithValues: $0.values.map { ($0.number, $0) }) }
        var linked: [Int64: [Int64: UInt32]] = [:]
        for (number, rows) in effects {
            guard let s = states[number] else { continue }
            var order: [Int64] = []
            var vectors: [Float] = []
            for row in rows.keys.sorted() {
                guard let effect = rows[row], let vector = effect.vector, effect.id != nil else { continue }
                order.append(row)
                vectors.append(contentsOf: vector)
            }
            guard !order.isEmpty else { continue }
            let index = s.lock.read { s.index }
            let threads = order.count >= 256 ? configuration.buildThreads : 1
            guard let nodes = try? index.insertPending(vectors, labels: order.map { UInt64($0) }, threads: threads)
            else { continue }
            linked[number] = Dictionary(uniqueKeysWithValues: zip(order, nodes))
        }
        return linked
    }

    private func publish(
        _ rows: [Int64: WriteTransaction.Effect], to s: CollectionState, linked: [Int64: UInt32]
    ) throws(HybridStoreError) {
        // Cold rows deleted, or given a vector (back to the hot tier), leave the cold tier; value updates reach
        // its filter columns. Last, so a row returning to the graph is in it before it leaves the cold tier.
        defer {
            s.lock.write {
                guard !s.cold.isEmpty else { return }
                for (row, effect) in rows {
                    guard let block = effect.coldBlock else { continue }
                    if effect.deleted || effect.vector != nil {
                        s.cold.remove(row: row, block: block)
                    } else if !effect.values.isEmpty {
                        s.cold.update(row: row, block: block, values: effect.values)
                    }
                }
            }
        }
        let index = s.lock.read { s.index }
        var labels: [UInt64] = []
        var vectors: [Float] = []
        var inserts: [(id: RowID, values: [String: Value], replaces: UInt32?, pending: UInt32?)] = []
        var removed: [UInt32] = []
        var valueUpdates: [(node: UInt32, values: [String: Value])] = []
        // Old nodes first: hidden from searches at once.
        for row in rows.keys.sorted() {
            let effect = rows[row]!
            let old = index.node(forLabel: UInt64(row))
            if effect.deleted || effect.vector != nil, let old {
                do throws(HNSWError) {
                    try index.remove(label: UInt64(row))
                } catch {
                    throw HybridStoreError(error, collection: s.name)
                }
                removed.append(old)
            }
            if let vector = effect.vector, let id = effect.id {
                let pending = linked[row]
                if pending == nil {
                    labels.append(UInt64(row))
                    vectors.append(contentsOf: vector)
                }
                inserts.append((id, effect.values, old, pending))
            } else if !effect.deleted, let old, !effect.values.isEmpty {
                valueUpdates.append((old, effect.values))
            }
        }
        // Value-only updates; a replacement node carries the values its update did not set; removed nodes
        // are forgotten.
        s.mutate { columns, setID in
            for update in valueUpdates {
                let merged = columns.values(of: update.node).merging(update.values) { $1 }
                columns.clear(node: update.node)
                columns.set(node: update.node, values: merged)
            }
            for i in inserts.indices {
                if let old = inserts[i].replaces {
                    inserts[i].values = columns.values(of: old).merging(inserts[i].values) { $1 }
                }
            }
            for node in removed {
                columns.clear(node: node)
                setID(node, nil)
            }
        }
        s.rowsWritten.add(valueUpdates.count + removed.count + inserts.count, ordering: .relaxed)
        guard !inserts.isEmpty else { return }
        do throws(HNSWError) {
            // Linked already (pending, their old nodes removed above): made live now. The rest inserted here.
            let pending = inserts.compactMap(\.pending)
            if !pending.isEmpty { try index.activate(pending) }
            var inserted =
                labels.isEmpty
                ? [][...]
                : try index.insert(
                    contentsOf: vectors, labels: labels,
                    threads: labels.count >= 256 ? configuration.buildThreads : 1)[...]
            let nodes = inserts.map { entry in entry.pending ?? inserted.removeFirst() }
            s.mutate { columns, setID in
                for (node, entry) in zip(nodes, inserts) {
                    columns.set(node: node, values: entry.values)
                    setID(node, entry.id)
                }
                if inserts.count >= 1024 { columns.settle() }
            }
        } catch {
            throw HybridStoreError(error, collection: s.name)
        }
    }

    private func scheduleCheckpoint() {
        let start = writer.withLock { state -> Bool in
            if state.checkpointScheduled { return false }
            state.checkpointScheduled = true
            return true
        }
        guard start else { return }
        inBackground(
            { [self] () throws(HybridStoreError) in try checkpoint() },
            then: { [self] in writer.withLock { $0.checkpointScheduled = false } })
    }

    /// Runs `work` on the background queue, keeping its error for `lastBackgroundError`, then `then`.
    func inBackground(
        _ work: @escaping @Sendable () throws(HybridStoreError) -> Void, then: @escaping @Sendable () -> Void
    ) {
        backgroundQueue.async { [self] in
            do throws(HybridStoreError) {
                try work()
            } catch {
                backgroundError.withLock { $0 = error }
            }
            then()
        }
    }

    /// The last error of background work (a checkpoint, or an index update that forced a rebuild), if any.
    public var lastBackgroundError: HybridStoreError? { backgroundError.withLock { $0 } }
}
