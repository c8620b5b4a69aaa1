import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Usage: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Export tenants' usage for billing: stored rows and bytes per tier, rows written and deleted, queries, vectors scored.",
            discussion:
                "Without --since the flows are all-time totals; with it, the sums of the usage buckets from that time on."
        )
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this tenant.") var tenant: String?
        @Option(
            help: ArgumentHelp(
                "Flows since this time: Unix seconds or ISO 8601 (2026-11-01T00:00:00Z).", valueName: "time"))
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
                let header = [
                    "tenant", "rows", "bytes", "hot_rows", "hot_bytes", "cold_rows", "cold_bytes", "rows_written",
                    "rows_deleted", "bytes_written", "queries", "vectors_scored", "since", "max_rows", "max_bytes",
                    "max_queries", "query_period",
                ]
                func fields(_ u: TenantUsage) -> [Any] {
                    let sinceText: Any = u.since.map { ISO8601DateFormatter().string(from: $0) } ?? NSNull()
                    let optional = { (v: Int64?) -> Any in v.map { $0 as Any } ?? NSNull() }
                    return [
                        u.tenant, u.rows, u.bytes, u.hotRows, u.hotBytes, u.coldRows, u.coldBytes, u.rowsWritten,
                        u.rowsDeleted, u.bytesWritten, u.queries, u.vectorsScored, sinceText,
                        optional(u.quota.maxRows), optional(u.quota.maxBytes), optional(u.quota.maxQueries),
                        optional(u.quota.queryPeriodSeconds),
                    ]
                }
                var out = ""
                switch format {
                case .csv, .table:
                    let separator = format == .csv ? "," : "\t"
                    out += header.joined(separator: separator) + "\n"
                    for u in all {
                        out +=
                            fields(u).map { value -> String in
                                if value is NSNull { return "" }
                                let text = "\(value)"
                                guard format == .csv, containsAny(text, of: [",", "\"", "\n", "\r"]) else {
                                    return text
                                }
                                return quoted(text, with: "\"")
                            }.joined(separator: separator) + "\n"
                    }
                case .json, .jsonl:
                    let objects = all.map { Dictionary(uniqueKeysWithValues: zip(header, fields($0))) }
                    if format == .jsonl {
                        for o in objects { out += Render.line(o) + "\n" }
                    } else {
                        let data = try JSONSerialization.data(
                            withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
                        out += String(decoding: data, as: UTF8.self) + "\n"
                    }
                }
                FileHandle.standardOutput.write(Data(out.utf8))
            }
        }
    }
}
