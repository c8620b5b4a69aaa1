import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Find the k nearest rows, the best keyword matches (--text), or both fused, optionally under a filter.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var query: QueryArguments
        @OptionGroup var tenant: TenantOption
        @Option(help: "table, json, jsonl or csv.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                if query.text != nil {
                    let (hits, _, columns) = try query.retrieve(hs, tenant, columns: query.columns, explain: false)
                    // The ranking score first (its name `score` unless a returned column has it).
                    let scoreName = columns.contains("score") ? "_score" : "score"
                    print(
                        Render.rows(
                            hits.map { hit in
                                var values = hit.values
                                values[scoreName] = .real(hit.score)
                                return (hit.id, hit.distance, values, nil)
                            }, columns: [scoreName] + columns, format: format))
                    return
                }
                let (hits, _, columns) = try query.execute(hs, tenant, columns: query.columns, explain: false)
                print(Render.rows(hits.map { ($0.id, $0.distance, $0.values, nil) }, columns: columns, format: format))
            }
        }
    }
}
