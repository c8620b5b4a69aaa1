import Foundation
import QueryPlanner
import Synchronization

/// A tenant's quotas. nil = unlimited.
public struct TenantQuota: Sendable, Equatable, Codable {
    /// Rows stored, over every tier and every collection with a tenant column.
    public var maxRows: Int64?
    /// Logical bytes stored (see `TenantUsage.bytes`).
    public var maxBytes: Int64?
    /// Scoped queries per `queryPeriodSeconds`.
    public var maxQueries: Int64?
    /// The period of `maxQueries`, in seconds (windows aligned to the Unix epoch).
    public var queryPeriodSeconds: Int64?

    public init(
        maxRows: Int64? = nil, maxBytes: Int64? = nil, maxQueries: Int64? = nil, queryPeriodSeconds: Int64? = nil
    ) {
        self.maxRows = maxRows
        self.maxBytes = maxBytes
        self.maxQueries = maxQueries
        self.queryPeriodSeconds = queryPeriodSeconds
    }
}

/// What a tenant stores and has done, for billing.
///
/// Bytes are logical: 4 per vector component, 8 per number, the UTF-8 length of text and the length of
/// blobs (NULL: 0), so they do not depend on page layout or compression. Stored rows and bytes are
/// committed in the same transaction as the rows they count; query counters are accumulated in memory and
/// flushed at most `Configuration.usageFlushSeconds` apart (a crash loses at most that interval's queries).
public struct TenantUsage: Sendable, Equatable, Codable {
    public var tenant: String
    public var quota: TenantQuota
    public var hotRows: Int64
    public var hotBytes: Int64
    public var coldRows: Int64
    public var coldBytes: Int64
    /// The start of the period the flow counters cover (a bucket boundary), or nil for all time.
    public var since: Date?
    public var rowsWritten: Int64
    public var rowsDeleted: Int64
    public var bytesWritten: Int64
    public var queries: Int64
    /// Distance computations of the tenant's queries.
    public var vectorsScored: Int64

    public var rows: Int64 { hotRows + coldRows }
    public var bytes: Int64 { hotBytes + coldBytes }
}

extension TenantUsage {
    /// Replaces the all-time flows with those of a period.
    mutating func apply(_ flows: [Int64]?, since: Date) {
        let f = flows ?? [0, 0, 0, 0, 0]
        self.since = since
        rowsWritten = f[0]
        rowsDeleted = f[1]
        bytesWritten = f[2]
        queries = f[3]
        vectorsScored = f[4]
    }
}
