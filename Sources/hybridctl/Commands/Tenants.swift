import ArgumentParser
import Foundation
import HybridStore

/// Quota options shared by `tenants create` and `tenants quota`.
struct QuotaOptions: ParsableArguments {
    @Option(name: .customLong("max-rows"), help: "Rows the tenant may store (all tiers, all collections).") var maxRows: Int64?
    @Option(name: .customLong("max-bytes"), help: "Logical bytes the tenant may store.") var maxBytes: Int64?
    @Option(name: .customLong("max-queries"), help: "Queries per --query-period.") var maxQueries: Int64?
    @Option(name: .customLong("query-period"), help: "Seconds of a query-quota window.") var queryPeriod: Int64?

    var quota: TenantQuota {
        TenantQuota(maxRows: maxRows, maxBytes: maxBytes, maxQueries: maxQueries,
                    queryPeriodSeconds: queryPeriod ?? (maxQueries == nil ? nil : 3600))
    }
}

extension HybridCtl {
    struct Tenants: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tenants",
            abstract: "Create tenants, set their quotas, drop them.",
            discussion: "A collection names its tenant column at creation (`create --tenant-column`); read and write as a tenant with --tenant NAME.",
            subcommands: [Create.self, Quota.self, Drop.self])

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a tenant, optionally with quotas.")
            @OptionGroup var store: StoreOptions
            @Argument(help: "Tenant name.") var name: String
            @OptionGroup var quota: QuotaOptions

            func run() throws {
                try store.run { hs in
                    try hs.createTenant(name, quota: quota.quota)
                    print("created tenant \(name)")
                }
            }
        }

        struct Quota: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Set a tenant's quotas (those not given become unlimited); creates the tenant when missing.")
            @OptionGroup var store: StoreOptions
            @Argument(help: "Tenant name.") var name: String
            @OptionGroup var quota: QuotaOptions

            func run() throws {
                try store.run { hs in
                    try hs.setQuota(quota.quota, for: name)
                    let q = try hs.quota(of: name)
                    print("tenant \(name): max rows \(q.maxRows.map(String.init) ?? "unlimited"), max bytes \(q.maxBytes.map(String.init) ?? "unlimited"), max queries \(q.maxQueries.map { "\($0) per \(q.queryPeriodSeconds ?? 0) s" } ?? "unlimited")")
                }
            }
        }

        struct Drop: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Drop a tenant: its rows in every collection, its usage and its quotas, in one transaction.")
            @OptionGroup var store: StoreOptions
            @Argument(help: "Tenant name.") var name: String

            func run() throws {
                try store.run { hs in
                    let rows = try hs.dropTenant(name)
                    print("dropped tenant \(name): \(rows) rows")
                }
            }
        }
    }

    struct Usage: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export tenants' usage for billing: stored rows and bytes per tier, rows written and deleted, queries, vectors scored.",
            discussion: "Without --since the flows are all-time totals; with it, the sums of the usage buckets from that time on.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this tenant.") var tenant: String?
        @Option(help: ArgumentHelp("Flows since this time: Unix seconds or ISO 8601 (2026-11-01T00:00:00Z).", valueName: "time"))
        var since: String?
        @Option(help: "csv, json, jsonl or table.") var format: OutputFormat = .csv

        func validate() throws { _ = try sinceDate() }

        func sinceDate() throws -> Date? {
            guard let since else { return nil }
            if let seconds = Double(since) { return Date(timeIntervalSince1970: seconds) }
            if let date = ISO8601DateFormatter().date(from: since) { return date }
            throw ValidationError("--since '\(since)' is neither Unix seconds nor ISO 8601")
        }

        func run() throws {
            try store.run(write: false) { hs in
                let since = try sinceDate()
                let all = try tenant.map { [try hs.usage(tenant: $0, since: since)] } ?? hs.usage(since: since)
                let header = ["tenant", "rows", "bytes", "hot_rows", "hot_bytes", "cold_rows", "cold_bytes", "rows_written",
                              "rows_deleted", "bytes_written", "queries", "vectors_scored", "since", "max_rows", "max_bytes",
                              "max_queries", "query_period"]
                func fields(_ u: TenantUsage) -> [Any] {
                    let sinceText: Any = u.since.map { ISO8601DateFormatter().string(from: $0) } ?? NSNull()
                    let optional = { (v: Int64?) -> Any in v.map { $0 as Any } ?? NSNull() }
                    return [u.tenant, u.rows, u.bytes, u.hotRows, u.hotBytes, u.coldRows, u.coldBytes, u.rowsWritten,
                            u.rowsDeleted, u.bytesWritten, u.queries, u.vectorsScored, sinceText,
                            optional(u.quota.maxRows), optional(u.quota.maxBytes), optional(u.quota.maxQueries),
                            optional(u.quota.queryPeriodSeconds)]
                }
                var out = ""
                switch format {
                case .csv, .table:
                    let separator = format == .csv ? "," : "\t"
                    out += header.joined(separator: separator) + "\n"
                    for u in all {
                        out += fields(u).map { value -> String in
                            if value is NSNull { return "" }
                            let text = "\(value)"
                            guard format == .csv, containsAny(text, of: [",", "\"", "\n", "\r"]) else { return text }
                            return quoted(text, with: "\"")
                        }.joined(separator: separator) + "\n"
                    }
                case .json, .jsonl:
                    let objects = all.map { Dictionary(uniqueKeysWithValues: zip(header, fields($0))) }
                    if format == .jsonl {
                        for o in objects { out += Render.line(o) + "\n" }
                    } else {
                        let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
                        out += String(decoding: data, as: UTF8.self) + "\n"
                    }
                }
                FileHandle.standardOutput.write(Data(out.utf8))
            }
        }
    }
}
