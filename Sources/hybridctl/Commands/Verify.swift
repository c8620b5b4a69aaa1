import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare every collection's rows with its index; exit code 1 when anything disagrees.")
        @OptionGroup var store: StoreOptions
        @Option(help: "table or json.") var format: OutputFormat = .table
        @Flag(help: "Rebuild keyword indexes that disagree with their rows, then verify again.") var repair = false

        func run() throws {
            let report = try store.run(write: repair) { hs in
                let first = try hs.verify()
                guard repair,
                    first.collections.contains(where: { $0.mismatches.contains { $0.contains("keyword index") } })
                else {
                    return first
                }
                for name in try hs.repairKeywordIndexes() { printError("rebuilt the keyword index of \(name)") }
                return try hs.verify()
            }
            if format == .json || format == .jsonl {
                print(
                    Render.pretty(
                        report.collections.map {
                            [
                                "collection": $0.name, "rows": $0.rows, "vectors": $0.vectors,
                                "index_nodes": $0.indexNodes,
                                "mismatches": $0.mismatches, "unreachable_nodes": $0.unreachableNodes,
                            ] as [String: Any]
                        }))
            } else {
                for c in report.collections {
                    print(
                        "\(c.name): \(c.rows) rows, \(c.vectors) vectors, \(c.indexNodes) index nodes, \(c.mismatches.count) mismatches"
                            + (c.unreachableNodes > 0
                                ? " (\(c.unreachableNodes) unreachable nodes; a checkpoint reconnects them)" : ""))
                    for m in c.mismatches.prefix(50) { print("  \(m)") }
                }
                print(report.isConsistent ? "ok" : "MISMATCH")
            }
            if !report.isConsistent { throw ExitCode(1) }
        }
    }
}
