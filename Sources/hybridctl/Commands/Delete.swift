import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete rows by id or by filter, in one transaction.")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String
        @Argument(help: "Row ids.") var ids: [String] = []
        @Option(name: .customLong("where"), help: "Delete the rows matching this filter.") var filter: String?
        @OptionGroup var tenant: TenantOption

        func validate() throws {
            if ids.isEmpty == (filter == nil) { throw ValidationError("give row ids or --where, not both") }
        }

        func run() throws {
            try store.run { hs in
                let info = try hs.describe(collection)
                let c = try hs.collection(collection)
                let scope = try tenant.scope(hs)
                let targets =
                    try filter.map { f in
                        try scope.map { try $0.ids(in: c, where: hs.parseFilter(f)) }
                            ?? hs.ids(in: c, where: hs.parseFilter(f))
                    } ?? ids.map { try parseID($0, info.schema.id) }
                let n =
                    try scope.map { try $0.delete(targets, from: c) }
                    ?? hs.write { tx in try tx.delete(targets, from: c) }
                print("deleted \(n) rows")
            }
        }
    }
}
