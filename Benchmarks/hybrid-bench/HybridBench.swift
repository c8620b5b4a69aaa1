import ArgumentParser

@main
struct HybridBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hybrid-bench",
        abstract: "Recall-vs-latency benchmarks for HybridStore over datasets in shared/datasets/FORMAT.md.",
        subcommands: [
            AnnCommand.self, HybridCommand.self, ImportCommand.self, TierCommand.self, TenantsCommand.self,
            CompareCommand.self, CalibrationCommand.self, TextCommand.self, ConcurrentCommand.self,
            ServiceCommand.self,
        ])
}

/// Parses "10,20,40" into [10, 20, 40].
func parseIntList(_ text: String) throws -> [Int] {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ValidationError("expected a comma-separated list of positive integers, got '\(text)'")
    }
    return values.map { $0! }
}
