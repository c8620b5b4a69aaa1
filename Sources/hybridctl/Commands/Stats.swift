import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rows, bytes on disk, RAM, tiers and per-column statistics.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Collection (default: all).") var collection: String?
        @Option(help: "table or json.") var format: OutputFormat = .table

        /// The recall a calibration point gives, and whether it was measured or (past the largest effort run)
        /// modelled.
        static func recallThere(_ point: BuildCalibration.Point) -> String {
            (point.isModelled ? ", modelled" : ", measured")
                + String(format: " recall %.3f ± %.3f there", point.recall, point.error)
        }

        func run() throws {
            try store.run(write: false) { hs in
                let names = try collection.map { [$0] } ?? hs.collections().map(\.name)
                let stats = try names.map { try hs.statistics(hs.collection($0)) }
                if format == .json || format == .jsonl {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try encoder.encode(stats), as: UTF8.self))
                    return
                }
                for s in stats {
                    print("\(s.name): \(s.rows) rows; store on disk \(s.storeBytesOnDisk / 1024) KiB")
                    print("  hot:  \(s.tiers["hot"] ?? 0) rows, index \(s.indexBytes / 1024) KiB in RAM")
                    print(
                        "  cold: \(s.tiers["cold"] ?? 0) rows in \(s.coldBlocks) blocks, \(s.coldBytesOnDisk / 1024) KiB on disk, \(s.coldMemoryBytes / 1024) KiB in RAM (block summaries, live rows, filter values)"
                    )
                    if s.textBytes > 0 {
                        print("  keyword: \(s.textBytes / 1024) KiB in RAM (posting lists and row lengths)")
                    }
                    if let c = s.calibration {
                        let buckets = ["no filter", "≥ 50 %", "20–50 %", "5–20 %", "1–5 %", "< 1 %"]
                        print(
                            "  recall calibration: \(c.queries) build-time queries a bucket over \(c.rows) rows, "
                                + String(
                                    format: "%.1f h old, %.2f s; target %.3f at k %d",
                                    (Date().timeIntervalSince1970 - c.measuredAt) / 3600,
                                    c.seconds, c.target, c.k))
                        for (bucket, points) in c.curves.sorted(by: { $0.key < $1.key }) {
                            let scale = bucket < s.effortScales.count ? s.effortScales[bucket] : 1
                            let near = points.min { abs(log2($0.scale / scale)) < abs(log2($1.scale / scale)) }
                            print(
                                "    \(buckets[bucket]): effort ×" + String(format: "%.2f", scale)
                                    + (near.map(Self.recallThere) ?? ""))
                        }
                        if let cold = c.cold, let scale = s.coldEffortScale {
                            let near = cold.min { abs(log2($0.scale / scale)) < abs(log2($1.scale / scale)) }
                            print(
                                "    over both tiers (\(c.coldQueries ?? c.queries) queries, \(c.coldRows ?? 0) cold rows): cold effort ×"
                                    + String(format: "%.2f", scale)
                                    + (near.map(Self.recallThere) ?? ""))
                            for (curve, scale) in zip(c.coldFiltered ?? [], s.coldFilteredEffortScales) {
                                let near = curve.points.min {
                                    abs(log2($0.scale / scale)) < abs(log2($1.scale / scale))
                                }
                                print(
                                    "      under a filter, \(buckets[curve.bucket]) (measured at "
                                        + String(format: "%.1f %%", curve.selectivity * 100)
                                        + (curve.ranksByCode ? ", rows ranked by code" : ", blocks by centroid")
                                        + (curve.spread.map {
                                            String(format: "; following the data, spread %.2f, no hot rows", $0)
                                        } ?? "; hot rows exact")
                                        + "): cold effort ×" + String(format: "%.2f", scale)
                                        + (near.map(Self.recallThere) ?? ""))
                            }
                        } else if (s.tiers["cold"] ?? 0) > 0 {
                            print(
                                "    over both tiers: uncalibrated (the store's probe rule until a checkpoint measures it)"
                            )
                        }
                    } else {
                        print("  recall calibration: none (static model until a checkpoint measures one)")
                    }
                    print(
                        Render.table(
                            ["column", "type", "non-null", "nulls", "distinct", "min", "max", "frequent"],
                            s.columns.map { c in
                                [
                                    c.name, c.type, "\(c.nonNull)", "\(c.nulls)", "\(c.distinct)",
                                    c.minimum.map { "\($0)" } ?? "",
                                    c.maximum.map { "\($0)" } ?? "",
                                    c.frequent.map { "\($0.value)×\($0.count)" }.joined(separator: " "),
                                ]
                            }))
                }
            }
        }
    }
}
