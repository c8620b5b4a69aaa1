import Foundation
import HybridStore

/// Imports a dataset into a store through the public API, inferring the schema from base.jsonl.
enum StoreImport {
    /// Column types from the values seen: integers → integer, any float → real, strings → text,
    /// booleans → boolean. Every attribute is filterable.
    static func inferSchema(_ data: Dataset, connectivity: Int, efConstruction: Int) -> Schema {
        var columns: [ColumnSpec] = []
        for name in data.columns.order {
            let values = data.columns.byName[name] ?? []
            var type: ColumnType = .integer
            var sawNull = false
            for v in values {
                switch v {
                case .integer: break
                case .real: if type == .integer { type = .real }
                case .text: type = .text
                case .boolean: if type == .integer { type = .boolean }
                case .null: sawNull = true
                case .blob: type = .text
                }
                if type == .text { break }
            }
            columns.append(ColumnSpec(name: name, type: type, nullable: sawNull, filterable: true))
        }
        return Schema(
            vector: VectorSpec(
                dimensions: data.meta.dim, metric: Metric(rawValue: data.meta.metric) ?? .l2,
                connectivity: connectivity, constructionEffort: efConstruction),
            id: .integer, columns: columns)
    }

    /// Inserts every row in transactions of `batch` rows. Returns the collection.
    /// With `withSequence`, the schema has an integer column `seq` holding the row's number (the tier
    /// benchmark moves "the oldest" rows by it).
    /// `extraValues` are set on every row (columns the dataset does not have, e.g. a tenant column).
    static func run(
        _ data: Dataset, into store: HybridStore, name: String, schema: Schema, batch: Int = 10_000,
        extraValues: [String: Value] = [:]
    ) throws -> CollectionRef {
        let withSequence = schema.column("seq") != nil && data.columns.byName["seq"] == nil
        let collection = try store.createCollection(name, schema: schema)
        let dim = data.meta.dim
        let names = schema.columns.map(\.name)
        let columns = names.map { data.columns.byName[$0] ?? [] }
        var start = 0
        while start < data.meta.count {
            let end = min(start + batch, data.meta.count)
            try store.write { tx in
                for row in start..<end {
                    var values: [String: Value] = [:]
                    for (i, name) in names.enumerated() {
                        if let value = extraValues[name] {
                            values[name] = value
                            continue
                        }
                        if withSequence && name == "seq" {
                            values[name] = .integer(Int64(row))
                            continue
                        }
                        var v = columns[i][row]
                        if schema.columns[i].type == .real, case .integer(let n) = v { v = .real(Double(n)) }
                        values[name] = v
                    }
                    try tx.insert(
                        .int(Int64(row)), into: collection,
                        vector: Array(data.base[row * dim..<(row + 1) * dim]), values: values)
                }
            }
            start = end
        }
        return collection
    }
}

func directoryBytes(_ path: String) -> Int {
    let names = (try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? []
    return names.reduce(0) { total, name in
        let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + name)
        return total + ((attributes?[.size] as? NSNumber)?.intValue ?? 0)
    }
}
