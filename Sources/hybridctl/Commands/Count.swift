import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Count: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count rows, optionally those matching a filter.")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String
        @Option(name: .customLong("where"), help: "A filter.") var filter: String?
        @OptionGroup var tenant: TenantOption
        @Option(help: "table or json.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                let c = try hs.collection(collection)
                let n: Int
                if let scope = try tenant.scope(hs) {
                    n = try filter.map { try scope.count(c, where: hs.parseFilter($0)) } ?? scope.count(c)
                } else {
                    n = try filter.map { try hs.count(c, where: hs.parseFilter($0)) } ?? hs.count(c)
                }
                print(format == .json || format == .jsonl ? Render.line(["count": n]) : "\(n)")
            }
        }
    }
}
