import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Drop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop a collection and all its rows.")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String

        func run() throws {
            try store.run { hs in
                try hs.dropCollection(collection)
                print("dropped collection \(collection)")
            }
        }
    }
}
