import Foundation
import QueryPlanner
import Synchronization

extension HybridStore {
    // MARK: - Scopes and tenants

    /// A handle scoped to one tenant. O(1); no I/O.
    /// - Throws: `invalidArgument` for a name that cannot be a tenant's (empty, over 256 bytes, or with
    ///   control characters).
    public func tenant(_ name: String) throws(HybridStoreError) -> TenantScope {
        try Self.checkTenantName(name)
        return TenantScope(store: self, name: name)
    }

    static func checkTenantName(_ name: String) throws(HybridStoreError) {
        guard (1...256).contains(name.utf8.count),
            !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw HybridStoreError(
                .invalidArgument, "tenant name `\(name)` must be 1–256 bytes of UTF-8 without control characters",
                context: ["tenant": name])
        }
    }

    static func quotaError(
        tenant: String, quota: String, limit: Int64, current: Int64, adding: Int64
    ) -> HybridStoreError {
        HybridStoreError(
            .quotaExceeded,
            "tenant `\(tenant)`: quota of \(limit) \(quota) exceeded: it has \(current), the write adds \(adding)",
            context: [
                "tenant": tenant, "quota": quota, "limit": "\(limit)", "current": "\(current)",
                "requested": "\(adding)",
            ])
    }

    func usageBucket(_ seconds: Int64) -> Int64 {
        let size = max(configuration.usageBucketSeconds, 1)
        return seconds / size * size
    }

    /// Creates a tenant with its quotas. (Writing a tenant's first row creates it too, without quotas.)
    /// - Throws: `tenantExists`, `invalidArgument` (bad name or quota), `sqlite`.
    /// - Complexity: O(1): one row.
    public func createTenant(_ name: String, quota: TenantQuota = TenantQuota()) throws(HybridStoreError) {
        try Self.checkTenantName(name)
        try checkQuota(quota)
        let created = try sqliteWork("creating tenant `\(name)`") {
            try withWriter { c, _ in
                try foldUsageLog(c)  // a tenant whose first rows are only in the log exists too
                try c.statement(SQL.createTenant).run(quotaArguments(name, quota))
                guard c.changes > 0 else { return false }
                rememberQuota(name, quota, rows: 0, bytes: 0)
                return true
            }
        }
        guard created else {
            throw HybridStoreError(.tenantExists, "tenant `\(name)` already exists", context: ["tenant": name])
        }
    }

    /// Sets a tenant's quotas (creating the tenant when missing). Takes effect for the next write or query;
    /// rows already stored over a lowered quota stay, but no write may add to them.
    /// - Throws: `invalidArgument`, `sqlite`.
    public func setQuota(_ quota: TenantQuota, for name: String) throws(HybridStoreError) {
        try Self.checkTenantName(name)
        try checkQuota(quota)
        try sqliteWork("setting the quota of tenant `\(name)`") {
            try withWriter { c, _ in
                try foldUsageLog(c)
                try c.statement(SQL.setQuota).run(quotaArguments(name, quota))
                let statement = try c.statement(SQL.tenantByName)
                defer { statement.reset() }
                try statement.bind(.text(name), at: 1)
                guard try statement.step() else { return }
                let usage = Self.readUsage(statement)
                rememberQuota(name, quota, rows: usage.rows, bytes: usage.bytes)
            }
        }
    }

    private func checkQuota(_ quota: TenantQuota) throws(HybridStoreError) {
        for (label, value) in [
            ("maxRows", quota.maxRows), ("maxBytes", quota.maxBytes), ("maxQueries", quota.maxQueries),
        ] {
            if let value, value < 0 {
                throw HybridStoreError(
                    .invalidArgument, "quota \(label) must be ≥ 0, got \(value)", context: ["quota": label])
            }
        }
        if quota.maxQueries != nil, (quota.queryPeriodSeconds ?? 0) < 1 {
            throw HybridStoreError(
                .invalidArgument, "a query quota needs a period of at least 1 second",
                context: ["quota": "queryPeriodSeconds"])
        }
    }

    private func quotaArguments(_ name: String, _ q: TenantQuota) -> [Value] {
        [
            .text(name), q.maxRows.map { .integer($0) } ?? .null, q.maxBytes.map { .integer($0) } ?? .null,
            q.maxQueries.map { .integer($0) } ?? .null, q.queryPeriodSeconds.map { .integer($0) } ?? .null,
            .integer(Int64(Date().timeIntervalSince1970)),
        ]
    }

    /// Records a tenant's quotas in memory, with its committed totals. Caller holds the writer lock.
    private func rememberQuota(_ name: String, _ quota: TenantQuota, rows: Int64, bytes: Int64) {
        meter.withLock { m in
            if let max = quota.maxQueries, let period = quota.queryPeriodSeconds {
                m.queryQuotas[name] = (max, period)
            } else {
                m.queryQuotas[name] = nil
                m.windows[name] = nil
            }
            m.quotaGauges[name] =
                quota.maxRows == nil && quota.maxBytes == nil
                ? nil
                : QuotaGauge(rows: rows, bytes: bytes, maxRows: quota.maxRows, maxBytes: quota.maxBytes)
        }
    }

    /// Folds the usage log and loads every quota with its tenant's totals (on open, and after dropping a
    /// collection). Caller holds the writer lock.
    func loadQuotas(_ c: Connection) throws(HybridStoreError) {
        try foldUsageLog(c)
        // Query windows persisted by earlier processes (none in a store older than the table).
        let windows =
            (try? sqliteWork("reading query windows") { () throws -> [String: (start: Int64, count: Int64)] in
                let statement = try c.statement(SQL.queryWindows)
                defer { statement.reset() }
                var out: [String: (start: Int64, count: Int64)] = [:]
                while try statement.step() {
                    if case .text(let name) = statement.column(0) {
                        out[name] = (statement.int64(1), statement.int64(2))
                    }
                }
                return out
            }) ?? [:]
        let loaded = try sqliteWork("reading tenant quotas") {
            () throws -> ([String: (max: Int64, period: Int64)], [String: QuotaGauge]) in
            let statement = try c.statement(SQL.tenantsWithQuotas)
            defer { statement.reset() }
            var queries: [String: (max: Int64, period: Int64)] = [:]
            var gauges: [String: QuotaGauge] = [:]
            func optional(_ i: Int32) -> Int64? { if case .integer(let v) = statement.column(i) { v } else { nil } }
            while try statement.step() {
                guard case .text(let name) = statement.column(0) else { continue }
                if let max = optional(1) { queries[name] = (max, Swift.max(1, optional(2) ?? 1)) }
                if optional(3) != nil || optional(4) != nil {
                    gauges[name] = QuotaGauge(
                        rows: statement.int64(5), bytes: statement.int64(6), maxRows: optional(3),
                        maxBytes: optional(4))
                }
            }
            return (queries, gauges)
        }
        meter.withLock { m in
            m.queryQuotas = loaded.0
            m.quotaGauges = loaded.1
            m.windows = windows.filter { loaded.0[$0.key] != nil }
        }
    }

    /// After COMMIT of a write: its charges move the gauges of tenants with quotas.
    func chargesCommitted(_ charges: [String: WriteTransaction.TenantCharge]) {
        meter.withLock { m in
            m.usageLogRows += charges.count
            for (name, c) in charges where m.quotaGauges[name] != nil {
                m.quotaGauges[name]!.rows += c.hotRows + c.coldRows
                m.quotaGauges[name]!.bytes += c.hotBytes + c.coldBytes
            }
        }
    }

    /// Folds the usage log into the tenants' rows and usage buckets, then empties it. Caller holds the
    /// writer lock; runs in its own transaction unless one is open.
    func foldUsageLog(_ c: Connection) throws(HybridStoreError) {
        guard mode == .readWrite else { return }  // read-only: the log is folded by the next writer
        try sqliteWork("folding the usage log") {
            guard case .integer(let n)? = try c.statement(SQL.usageLogCount).scalar(), n > 0 else { return }
            let fold = {
                try c.statement(SQL.foldTenants).run([.integer(Int64(Date().timeIntervalSince1970))])
                try c.statement(SQL.foldUsage).run()
                try c.statement(SQL.clearUsageLog).run()
            }
            if c.isInTransaction { try fold() } else { try c.transaction(immediate: true) { try fold() } }
        }
        meter.withLock { $0.usageLogRows = 0 }
    }

    /// Folds the log when it has grown past a bound (after a write, holding the writer lock).
    func foldUsageLogIfLarge(_ c: Connection) {
        guard meter.withLock({ $0.usageLogRows }) > 500_000 else { return }
        do throws(HybridStoreError) {
            try foldUsageLog(c)
        } catch {
            backgroundError.withLock { $0 = error }
        }
    }

    /// Folds the usage log (taking the writer lock).
    func foldUsageLog() throws(HybridStoreError) {
        guard mode == .readWrite else { return }
        try sqliteWork("folding the usage log") { try withWriter { c, _ in try foldUsageLog(c) } }
    }

    /// Number of tenants.
    public func tenantCount() throws(HybridStoreError) -> Int {
        try foldUsageLog()
        return try withReader { c in
            guard case .integer(let n)? = try c.statement(SQL.tenantCount).scalar() else { return 0 }
            return Int(n)
        }
    }

    /// A tenant's quotas.
    /// - Throws: `unknownTenant`.
    public func quota(of name: String) throws(HybridStoreError) -> TenantQuota {
        try usage(tenant: name).quota
    }

    // MARK: - Usage

    /// One tenant's usage: stored rows and bytes per tier now, and its flows (rows written and deleted, bytes
    /// written, queries, vectors scored) since `since` (from the start of its bucket), or over all time.
    /// Flushes pending query counters first.
    /// - Throws: `unknownTenant`, `sqlite`.
    public func usage(tenant name: String, since: Date? = nil) throws(HybridStoreError) -> TenantUsage {
        try flushUsage()
        try foldUsageLog()
        let found = try withReader { c -> TenantUsage? in
            let statement = try c.statement(SQL.tenantByName)
            defer { statement.reset() }
            try statement.bind(.text(name), at: 1)
            guard try statement.step() else { return nil }
            return Self.readUsage(statement)
        }
        guard var usage = found else {
            throw HybridStoreError(.unknownTenant, "no tenant `\(name)`", context: ["tenant": name])
        }
        if let since {
            let flows = try self.flows(since: since, tenant: name)
            usage.apply(
                flows[name], since: Date(timeIntervalSince1970: Double(usageBucket(Int64(since.timeIntervalSince1970))))
            )
        }
        return usage
    }

    /// Every tenant's usage, by name: stored rows and bytes now, and flows since `since` (all time with nil).
    /// Flushes pending query counters first.
    public func usage(since: Date? = nil) throws(HybridStoreError) -> [TenantUsage] {
        try flushUsage()
        try foldUsageLog()
        var all = try withReader { c -> [TenantUsage] in
            let statement = try c.statement(SQL.allTenants)
            defer { statement.reset() }
            var out: [TenantUsage] = []
            while try statement.step() { out.append(Self.readUsage(statement)) }
            return out
        }
        if let since {
            let flows = try self.flows(since: since, tenant: nil)
            let start = Date(timeIntervalSince1970: Double(usageBucket(Int64(since.timeIntervalSince1970))))
            for i in all.indices { all[i].apply(flows[all[i].tenant], since: start) }
        }
        return all
    }

    private func flows(since: Date, tenant: String?) throws(HybridStoreError) -> [String: [Int64]] {
        let bucket = usageBucket(Int64(since.timeIntervalSince1970.rounded(.down)))
        return try withReader { c in
            let statement = try c.statement(tenant == nil ? SQL.usageSince : SQL.usageOfOneSince)
            defer { statement.reset() }
            try statement.bind(.integer(bucket), at: 1)
            if let tenant { try statement.bind(.text(tenant), at: 2) }
            var out: [String: [Int64]] = [:]
            while try statement.step() {
                if case .text(let name) = statement.column(0) { out[name] = (1...5).map { statement.int64(Int32($0)) } }
            }
            return out
        }
    }

    private static func readUsage(_ s: Statement) -> TenantUsage {
        func optional(_ i: Int32) -> Int64? { if case .integer(let v) = s.column(i) { v } else { nil } }
        let name: String = if case .text(let t) = s.column(0) { t } else { "" }
        return TenantUsage(
            tenant: name,
            quota: TenantQuota(
                maxRows: optional(1), maxBytes: optional(2), maxQueries: optional(3),
                queryPeriodSeconds: optional(4)),
            hotRows: s.int64(5), hotBytes: s.int64(6), coldRows: s.int64(7), coldBytes: s.int64(8),
            since: nil, rowsWritten: s.int64(9), rowsDeleted: s.int64(10), bytesWritten: s.int64(11),
            queries: s.int64(12), vectorsScored: s.int64(13))
    }

    // MARK: - Query metering

    /// Counts a scoped query against the tenant's query quota (if it has one).
    func admitQuery(_ tenant: String) throws(HybridStoreError) {
        let now = Int64(Date().timeIntervalSince1970)
        let refused = meter.withLock { m -> HybridStoreError? in
            guard let quota = m.queryQuotas[tenant] else { return nil }
            let start = now / quota.period * quota.period
            var window = m.windows[tenant] ?? (start, 0)
            if window.start != start { window = (start, 0) }
            guard window.count < quota.max else {
                return HybridStoreError(
                    .quotaExceeded,
                    "tenant `\(tenant)`: quota of \(quota.max) queries per \(quota.period) s exceeded",
                    context: [
                        "tenant": tenant, "quota": "queries", "limit": "\(quota.max)",
                        "current": "\(window.count)", "requested": "1",
                    ])
            }
            window.count += 1
            m.windows[tenant] = window
            return nil
        }
        if let refused { throw refused }
    }

    /// Records a finished scoped query; schedules a flush when the last one is older than the interval.
    func meterQuery(_ tenant: String, scored: Int) {
        let now = nowNanos()
        let bucket = usageBucket(Int64(Date().timeIntervalSince1970))
        let due = meter.withLock { m -> Bool in
            let key = Meter.Key(tenant: tenant, bucket: bucket)
            let old = m.pending[key] ?? (0, 0)
            m.pending[key] = (old.queries + 1, old.scored + Int64(scored))
            guard !m.flushScheduled, Double(now &- m.lastFlush) / 1e9 >= configuration.usageFlushSeconds else {
                return false
            }
            m.flushScheduled = true
            return true
        }
        guard due else { return }
        inBackground(
            { [self] () throws(HybridStoreError) in try flushUsage() },
            then: { [self] in meter.withLock { $0.flushScheduled = false } })
    }

    /// Writes the pending query counters to the database in one transaction (a tenant dropped meanwhile is
    /// skipped). Called on a timer by queries, and by `checkpoint()`, `usage` and `close()`.
    /// With a query quota, the tenant's current window is written in the same transaction, so the quota holds
    /// across processes and restarts; a crash forgives at most the queries of one flush interval
    /// (`Configuration.usageFlushSeconds`). A read-only open persists nothing: its counts stay in memory.
    public func flushUsage() throws(HybridStoreError) {
        // One flush at a time: `usage` flushes, then reads; a background flush that had taken the counters but not
        // committed them would otherwise leave them in neither place for that read (measured: one query in
        // ~2,000 missing, `TenantTests.usageCountsEveryFinishedQueryWhileFlushesRun`). Taken before the writer,
        // never while holding it.
        usageFlush.lock()
        defer { usageFlush.unlock() }
        let (pending, windows) = meter.withLock { m in
            let p = m.pending
            m.pending = [:]
            m.lastFlush = nowNanos()
            let tenants = Set(p.keys.map(\.tenant))
            return (p, m.windows.filter { tenants.contains($0.key) })
        }
        guard !pending.isEmpty, mode == .readWrite else { return }
        let now = Int64(Date().timeIntervalSince1970)
        do throws(HybridStoreError) {
            try sqliteWork("flushing usage") {
                try withWriter { c, _ in
                    try foldUsageLog(c)  // tenants first seen in the log exist too
                    try c.transaction(immediate: true) {
                        for (key, counts) in pending {
                            try c.statement(SQL.chargeQueries).run([
                                .text(key.tenant), .integer(counts.queries),
                                .integer(counts.scored), .integer(now),
                            ])
                            guard c.changes > 0 else { continue }  // dropped meanwhile
                            try c.statement(SQL.chargeUsage).run([
                                .text(key.tenant), .integer(key.bucket), .integer(0),
                                .integer(0), .integer(0), .integer(counts.queries),
                                .integer(counts.scored),
                            ])
                        }
                        for (tenant, window) in windows {
                            try c.statement(SQL.saveQueryWindow).run([
                                .text(tenant), .integer(window.start),
                                .integer(window.count),
                            ])
                        }
                    }
                }
            }
        } catch {
            // Put them back for the next flush.
            meter.withLock { m in
                for (key, counts) in pending {
                    let old = m.pending[key] ?? (0, 0)
                    m.pending[key] = (old.queries + counts.queries, old.scored + counts.scored)
                }
            }
            throw error
        }
    }

    // MARK: - Dropping a tenant

    /// Drops a tenant: its rows in every collection with a tenant column (vectors, cold entries), its usage
    /// and its quotas, in one transaction; the index drops the rows' nodes right after COMMIT.
    /// - Returns: how many rows were deleted.
    /// - Throws: `unknownTenant` (no such tenant and no rows of it), `sqlite`.
    /// - Complexity: proportional to the tenant's rows (found through the tenant column's index).
    @discardableResult
    public func dropTenant(_ name: String) throws(HybridStoreError) -> Int {
        try Self.checkTenantName(name)
        let states = catalog.withLock { Array($0.values) }.filter { $0.schema.tenantColumn != nil }
        // A SQLite failure in the body comes out of `write` as `sqlite`, like its own.
        let deleted = try write { tx -> Int in
            let c = tx.connection
            try foldUsageLog(c)
            var deleted = 0
            for s in states.sorted(by: { $0.number < $1.number }) {
                let statement = try c.statement(s.table.deleteTenantRows)
                try statement.bind(.text(name), at: 1)
                var rows: [(Int64, Bool)] = []
                while try statement.step() { rows.append((statement.int64(0), statement.int64(1) != 0)) }
                statement.reset()
                for (row, cold) in rows {
                    let block =
                        cold
                        ? try c.statement(SQL.deleteColdRow).scalar([.integer(s.number), .integer(row)]).flatMap(
                            integerValue) : nil
                    try tx.logChange(s, row: row, op: .delete)
                    tx.effects[s.number, default: [:]][row] = WriteTransaction.Effect(
                        deleted: true, coldBlock: block)
                }
                deleted += rows.count
            }
            try c.statement(SQL.deleteTenant).run([.text(name)])
            let existed = c.changes > 0
            try c.statement(SQL.deleteTenantUsage).run([.text(name)])
            try c.statement(SQL.deleteQueryWindow).run([.text(name)])
            guard existed || deleted > 0 else {
                throw HybridStoreError(.unknownTenant, "no tenant `\(name)`", context: ["tenant": name])
            }
            return deleted
        }
        meter.withLock { m in
            m.queryQuotas[name] = nil
            m.windows[name] = nil
            m.quotaGauges[name] = nil
            m.pending = m.pending.filter { $0.key.tenant != name }
        }
        return deleted
    }
}
