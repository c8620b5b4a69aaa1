import HNSW
import QueryPlanner

extension FilterColumns {
    /// Per-column statistics for `stats` and `explain`.
    func statistics() -> [ColumnStatistics] {
        columns.values.map { column in
            switch column.storage {
            case .numeric(let c):
                let live = c.values.filter { !$0.isNaN }
                return ColumnStatistics(
                    name: column.spec.name, type: column.spec.type.rawValue, nonNull: live.count,
                    nulls: c.nulls, distinct: Set(live).count,
                    minimum: live.min(), maximum: live.max(), frequent: [])
            case .text(let c):
                var counts: [Int32: Int] = [:]
                for code in c.codes where code >= 0 { counts[code, default: 0] += 1 }
                let frequent = counts.sorted { $0.value > $1.value }.prefix(5).map {
                    (c.strings[Int($0.key)], $0.value)
                }
                return ColumnStatistics(
                    name: column.spec.name, type: column.spec.type.rawValue,
                    nonNull: counts.values.reduce(0, +), nulls: c.nulls, distinct: counts.count,
                    minimum: nil, maximum: nil, frequent: frequent.map { FrequentValue(value: $0.0, count: $0.1) })
            }
        }.sorted { $0.name < $1.name }
    }
}

/// A value and how many rows hold it.
public struct FrequentValue: Sendable, Equatable, Codable {
    public var value: String
    public var count: Int
}

/// What the engine knows of one filterable column.
public struct ColumnStatistics: Sendable, Equatable, Codable {
    public var name: String
    public var type: String
    public var nonNull: Int
    public var nulls: Int
    public var distinct: Int
    public var minimum: Double?
    public var maximum: Double?
    /// Most frequent text values (text columns).
    public var frequent: [FrequentValue]
}
