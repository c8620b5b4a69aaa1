import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct TierCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tier",
            abstract: "Move rows between the hot tier (RAM, graph) and the cold tier (LZ4 blocks in the database).")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String
        @Option(name: .customLong("where"), help: "Rows to move (default: all).") var filter: String?
        @Option(help: "Destination: hot or cold.") var to: String
        @Flag(help: "Store new cold blocks as float16 (lossy, about half the bytes).") var float16 = false

        func validate() throws {
            guard Tier(rawValue: to) != nil else { throw ValidationError("--to must be hot or cold, got '\(to)'") }
        }

        func run() throws {
            try store.run { hs in
                let c = try hs.collection(collection)
                let n = try hs.tier(
                    c, where: try filter.map { try hs.parseFilter($0) }, to: Tier(rawValue: to)!,
                    codec: float16 ? .float16BitShuffledLZ4 : .bitShuffledLZ4)
                // A checkpoint, as `import` ends with one: it measures the recall curves over both tiers that the
                // move calls for now (a move of fewer changes than `checkpointEveryChanges` queues none, and its
                // curves would wait for a later checkpoint).
                try hs.checkpoint()
                let s = try hs.statistics(c)
                print(
                    "moved \(n) rows to \(to); now hot \(s.tiers["hot"] ?? 0), cold \(s.tiers["cold"] ?? 0) in \(s.coldBlocks) blocks"
                )
            }
        }
    }
}
