import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Checkpoint: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write index snapshots now and trim the change log.")
        @OptionGroup var store: StoreOptions

        func run() throws {
            try store.run { hs in
                try hs.checkpoint()
                print("checkpoint written")
            }
        }
    }
}
