import Foundation
import QueryPlanner

/// A benchmark dataset in the directory format of `shared/datasets/FORMAT.md`.
struct Dataset {
    struct Meta {
        var name: String
        var dim: Int
        var metric: String
        var count: Int
        var queryCount: Int
    }

    struct FilterCase {
        var qid: Int
        var className: String
        var whereText: String
        var filter: Filter?
        var selectivity: Double
        var groundTruth: [Int]
    }

    var meta: Meta
    var base: [Float]
    var queries: [Float]
    var cases: [FilterCase]
    /// Attribute columns of base.jsonl, by name, indexed by row id.
    var columns: Columns

    /// Class names in the order they first appear in filters.jsonl.
    var classNames: [String] {
        var seen: [String] = []
        for c in cases where !seen.contains(c.className) { seen.append(c.className) }
        return seen
    }

    func query(_ qid: Int) -> ArraySlice<Float> { queries[qid * meta.dim..<(qid + 1) * meta.dim] }

    struct Columns: ColumnSource {
        var byName: [String: [Value]] = [:]
        var order: [String] = []
        func values(of column: String) -> [Value]? { byName[column] }
    }

    static func load(_ directory: String, loadColumns: Bool = true) throws -> Dataset {
        let url = URL(fileURLWithPath: directory)
        let metaObject = try JSONSerialization.jsonObject(
            with: Data(contentsOf: url.appendingPathComponent("meta.json")))
        guard let m = metaObject as? [String: Any], let dim = m["dim"] as? Int, let count = m["count"] as? Int,
            let queryCount = m["query_count"] as? Int
        else { throw BenchError("meta.json lacks dim, count or query_count") }
        let meta = Meta(
            name: m["name"] as? String ?? url.lastPathComponent, dim: dim,
            metric: m["metric"] as? String ?? "l2", count: count, queryCount: queryCount)
        let base = try readFloats(url.appendingPathComponent("base.f32"), expected: count * dim)
        let queries = try readFloats(url.appendingPathComponent("queries.f32"), expected: queryCount * dim)
        var columns = Columns()
        if loadColumns {
            columns = try readColumns(url.appendingPathComponent("base.jsonl"), count: count)
        }
        var cases: [FilterCase] = []
        let filterText = try String(contentsOf: url.appendingPathComponent("filters.jsonl"), encoding: .utf8)
        for line in filterText.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let qid = o["qid"] as? Int, let cls = o["class"] as? String, let gt = o["gt"] as? [Int]
            else { throw BenchError("filters.jsonl: malformed line \(line.prefix(80))") }
            var filter: Filter? = nil
            if let json = o["json"], !(json is NSNull) { filter = try Filter(json: json) }
            cases.append(
                FilterCase(
                    qid: qid, className: cls, whereText: o["where"] as? String ?? "", filter: filter,
                    selectivity: o["selectivity"] as? Double ?? 1, groundTruth: gt))
        }
        return Dataset(meta: meta, base: base, queries: queries, cases: cases, columns: columns)
    }

    private static func readFloats(_ url: URL, expected: Int) throws -> [Float] {
        let data = try Data(contentsOf: url)
        guard data.count == expected * 4 else {
            throw BenchError("\(url.lastPathComponent): expected \(expected * 4) bytes, found \(data.count)")
        }
        return data.withUnsafeBytes { raw in
            (0..<expected).map {
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        }
    }

    private static func readColumns(_ url: URL, count: Int) throws -> Columns {
        var columns = Columns()
        let data = try Data(contentsOf: url)
        var row = 0
        var start = data.startIndex
        while start < data.endIndex {
            let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
            defer { start = end + 1 }
            if end == start { continue }
            guard let o = try JSONSerialization.jsonObject(with: data[start..<end]) as? [String: Any] else {
                throw BenchError("base.jsonl line \(row + 1) is not an object")
            }
            for (key, raw) in o where key != "id" {
                if columns.byName[key] == nil {
                    columns.byName[key] = Array(repeating: .null, count: count)
                    columns.order.append(key)
                }
                columns.byName[key]![row] = try Value(json: raw)
            }
            row += 1
        }
        guard row == count else { throw BenchError("base.jsonl has \(row) rows, meta.json says \(count)") }
        return columns
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// recall@k as FORMAT.md defines it: |result_k ∩ gt[0:k]| / min(k, len(gt)); 1 when there is nothing to find.
func recall(_ result: [Int], groundTruth: [Int], k: Int = 10) -> Double {
    let truth = Set(groundTruth.prefix(k))
    guard !truth.isEmpty else { return result.isEmpty ? 1 : 0 }
    let hits = result.prefix(k).filter { truth.contains($0) }.count
    return Double(hits) / Double(min(k, truth.count))
}

/// Peak resident set size of this process (VmHWM), in bytes.
func peakRSSBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.split(separator: " ").compactMap { Int($0) }
        return (digits.first ?? 0) * 1024
    }
    return 0
}

/// Current resident set size of this process (VmRSS), in bytes.
func currentRSSBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
    }
    return 0
}

func cpuName() -> String {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
    for line in info.split(separator: "\n") where line.hasPrefix("model name") {
        return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
            ?? "unknown"
    }
    return "unknown"
}

func nowNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
