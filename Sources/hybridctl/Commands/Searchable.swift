import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Searchable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make text columns of a collection searchable: builds their keyword index from the rows.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Collection.") var collection: String
        @Argument(help: "Text columns.") var columns: [String]

        func validate() throws {
            if columns.isEmpty { throw ValidationError("name at least one column") }
        }

        func run() throws {
            try store.run { hs in
                let c = try hs.collection(collection)
                let started = Date()
                var last = Date.distantPast
                try hs.makeSearchable(c, columns: columns) { done, total in
                    if Date().timeIntervalSince(last) > 0.5 || done == total {
                        last = Date()
                        printError("indexing \(collection): \(done) of \(total) rows")
                    }
                }
                print(
                    "\(columns.joined(separator: ", ")) searchable in \(collection) "
                        + String(format: "(%.1f s)", Date().timeIntervalSince(started)))
            }
        }
    }
}
