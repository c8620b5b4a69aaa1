import ArgumentParser
import Foundation

/// `hybrid-bench compare A.json B.json …`: best QPS at recall thresholds per class, as ratios to the first file.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract:
            "Per class, the best QPS at recall@10 ≥ 0.90, 0.95 and 0.99 of each results file, with the ratio to the first."
    )

    @Argument(help: "Results JSON files; the first is the reference for ratios.") var files: [String]
    @Option(help: "Recall thresholds (comma-separated).") var thresholds = "0.90,0.95,0.99"

    func validate() throws {
        guard files.count >= 1 else { throw ValidationError("give at least one results file") }
    }

    func run() throws {
        let results = try files.map(BenchResults.read)
        let levels = thresholds.split(separator: ",").compactMap { Double($0) }
        print(CompareCommand.table(results, names: files, thresholds: levels))
    }

    /// Best QPS among runs of `className` reaching `threshold`, with the effort and mode that gave it.
    static func best(_ r: BenchResults, className: String, threshold: Double) -> BenchResults.Run? {
        r.runs.filter { $0.class == className && $0.recall_at_10 >= threshold }.max { $0.qps < $1.qps }
    }

    static func table(_ results: [BenchResults], names: [String], thresholds: [Double]) -> String {
        var classes: [String] = []
        for r in results { for run in r.runs where !classes.contains(run.class) { classes.append(run.class) } }
        let labels = results.enumerated().map { i, r in
            "\(r.engine) (\(URL(fileURLWithPath: names[i]).lastPathComponent))"
        }
        var out =
            "dataset: \(results[0].dataset.name) (\(results[0].dataset.count) × \(results[0].dataset.dim), \(results[0].dataset.metric))\n"
        for className in classes {
            out += "\nclass \(className)\n"
            out +=
                "engine".padding(44) + thresholds.map { String(format: "recall≥%.2f", $0).leftPadding(24) }.joined()
                + "\n"
            for (i, r) in results.enumerated() {
                var line = labels[i].padding(44)
                for t in thresholds {
                    guard let run = best(r, className: className, threshold: t) else {
                        let maxRecall = r.runs.filter { $0.class == className }.map(\.recall_at_10).max() ?? 0
                        line += String(format: "max %.3f", maxRecall).leftPadding(24)
                        continue
                    }
                    var cell = String(format: "%.0f", run.qps)
                    if i > 0, let ref = best(results[0], className: className, threshold: t) {
                        cell += String(format: " (%.2f×)", run.qps / ref.qps)
                    }
                    cell += " ef=\(run.effort.map(String.init) ?? "auto")"
                    line += cell.leftPadding(24)
                }
                out += line + "\n"
            }
        }
        out += "\nbuild seconds: "
        out += results.enumerated().map { i, r in
            let b = r.build_seconds ?? .nan
            let ratio =
                i > 0 && (results[0].build_seconds ?? 0) > 0
                ? String(format: " (%.2f×)", b / results[0].build_seconds!) : ""
            return "\(r.engine) " + String(format: "%.2f", b) + ratio
        }.joined(separator: ", ")
        out +=
            "\npeak RSS MiB: "
            + results.map { "\($0.engine) \(($0.peak_rss_bytes ?? 0) >> 20)" }.joined(separator: ", ")
        return out
    }
}
