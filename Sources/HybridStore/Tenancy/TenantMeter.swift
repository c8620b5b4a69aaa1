import Foundation
import QueryPlanner
import Synchronization

/// In-memory query metering and query quotas.
struct Meter {
    struct Key: Hashable {
        var tenant: String
        var bucket: Int64
    }
    /// Queries and vectors scored not yet flushed, per tenant and bucket.
    var pending: [Key: (queries: Int64, scored: Int64)] = [:]
    var lastFlush: UInt64 = 0
    var flushScheduled = false
    /// Tenants with a query quota: the quota and the current window's count.
    var queryQuotas: [String: (max: Int64, period: Int64)] = [:]
    var windows: [String: (start: Int64, count: Int64)] = [:]
    /// Tenants with a row or byte quota: the quota and their committed totals (derived: rebuilt on open from
    /// the database; changed only by committed writes, under the writer lock).
    var quotaGauges: [String: QuotaGauge] = [:]
    /// Rows in the usage log since it was last folded.
    var usageLogRows = 0
}

struct QuotaGauge {
    var rows: Int64
    var bytes: Int64
    var maxRows: Int64?
    var maxBytes: Int64?
}
