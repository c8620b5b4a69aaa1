import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a collection's schema and size.")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String
        @Option(help: "table or json.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                let info = try hs.describe(collection)
                if format == .json || format == .jsonl {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    let schema = (try? JSONSerialization.jsonObject(with: encoder.encode(info.schema))) ?? [:]
                    print(Render.pretty(["name": info.name, "rows": info.rows, "schema": schema] as [String: Any]))
                    return
                }
                let v = info.schema.vector
                print(
                    "collection \(info.name): \(info.rows) rows, \(info.schema.id == .integer ? "integer" : "string") ids"
                )
                print(
                    "vector: \(v.dimensions) dimensions, \(v.metric.rawValue), M \(v.connectivity), efConstruction \(v.constructionEffort)"
                )
                print(
                    Render.table(
                        ["column", "type", "nullable", "filterable", "searchable"],
                        info.schema.columns.map {
                            [
                                $0.name, $0.type.rawValue, $0.nullable ? "yes" : "no", $0.filterable ? "yes" : "no",
                                $0.searchable ? "yes" : "no",
                            ]
                        }))
                if info.schema.columns.contains(where: \.searchable) {
                    print("keyword tokenizer: \(info.schema.tokenizer.rawValue)")
                }
            }
        }
    }
}
