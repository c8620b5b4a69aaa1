import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read rows by id.",
            discussion: "Exits with 1 when any id is not found (after printing the rows that are).")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String
        @Argument(help: "Row ids.") var ids: [String]
        @Option(help: "Columns to return, comma-separated (default: all).") var select: String?
        @Flag(help: "Include the vector.") var vector = false
        @OptionGroup var tenant: TenantOption
        @Option(help: "table, json, jsonl or csv.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                let info = try hs.describe(collection)
                let c = try hs.collection(collection)
                let columns =
                    select.map { $0.split(separator: ",").map(String.init) } ?? info.schema.columns.map(\.name)
                let ids = try self.ids.map { try parseID($0, info.schema.id) }
                let rows =
                    try tenant.scope(hs).map { try $0.get(ids, from: c, returning: columns, includeVector: vector) }
                    ?? hs.get(ids, from: c, returning: columns, includeVector: vector)
                print(Render.rows(rows.map { ($0.id, nil, $0.values, $0.vector) }, columns: columns, format: format))
                if rows.count < Set(ids).count {
                    printError("\(Set(ids).count - rows.count) of \(Set(ids).count) ids not found")
                    throw ExitCode(1)
                }
            }
        }
    }
}
