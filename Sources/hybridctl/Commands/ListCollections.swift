import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Collections: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the collections.")
        @OptionGroup var store: StoreOptions
        @Option(help: "table or json.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                let all = try hs.collections()
                if format == .json || format == .jsonl {
                    print(
                        Render.pretty(
                            all.map {
                                [
                                    "name": $0.name, "rows": $0.rows, "dimensions": $0.schema.vector.dimensions,
                                    "metric": $0.schema.vector.metric.rawValue,
                                ] as [String: Any]
                            }))
                } else {
                    print(
                        Render.table(
                            ["collection", "rows", "dim", "metric", "columns"],
                            all.map {
                                [
                                    $0.name, "\($0.rows)", "\($0.schema.vector.dimensions)",
                                    $0.schema.vector.metric.rawValue,
                                    $0.schema.columns.map(\.name).joined(separator: ","),
                                ]
                            }))
                }
            }
        }
    }
}
