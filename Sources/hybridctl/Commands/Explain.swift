import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a query and show the plan, estimates, work and time.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var query: QueryArguments
        @OptionGroup var tenant: TenantOption
        @Option(help: "table (text) or json.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                if query.text != nil {
                    let (_, e, _) = try query.retrieve(
                        hs, tenant, columns: { query.select == nil ? [] : query.columns($0) },
                        explain: true)
                    print(format == .json || format == .jsonl ? e.json : e.description)
                    return
                }
                let (_, e, _) = try query.execute(
                    hs, tenant, columns: { query.select == nil ? [] : query.columns($0) },
                    explain: true)
                print(format == .json || format == .jsonl ? e.json : e.description)
            }
        }
    }
}
