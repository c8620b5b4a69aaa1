import Foundation
import HNSW
import HybridStore
import QueryPlanner

// What every test target shares: one seeded generator (`SplitMix64`, the one the store samples with), one
// temporary path, one temporary store, one random-vector source and one random-filter generator.

/// A path under the temporary directory no other test or process uses: `prefix-pid-random` then `suffix`.
/// Nothing is created.
package func temporaryPath(_ prefix: String, suffix: String = "") -> String {
    let safe = prefix.filter { $0.isLetter || $0.isNumber || $0 == "-" }
    return FileManager.default.temporaryDirectory.path
        + "/\(safe)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))\(suffix)"
}

/// A fresh store directory under the temporary directory, removed by `cleanup()`.
package struct TemporaryStore {
    package let path: String

    package init(_ name: String = #function) {
        path = temporaryPath("hs-" + name)
    }

    /// Opens (creating) the store; automatic checkpoints are off unless `configure` turns them on.
    package func open(_ configure: (inout Configuration) -> Void = { _ in }) throws -> HybridStore {
        var configuration = Configuration()
        configuration.checkpointEveryChanges = 0
        configure(&configuration)
        return try HybridStore(directory: path, create: true, configuration: configuration)
    }

    package func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// `count` vectors of `dim` values uniform in [-1, 1], seeded.
package func randomVectors(_ count: Int, dim: Int, seed: UInt64) -> [[Float]] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in (0..<dim).map { _ in Float.random(in: -1...1, using: &rng) } }
}

/// A random filter tree over `columns`, `depth` levels of AND/OR/NOT at most: comparisons, BETWEEN, IN lists
/// (holding NULL one time in eight when `nullsInLists`), IS [NOT] NULL, with literals from `literal`.
package func randomFilter(
    _ rng: inout SplitMix64, columns: [String], depth: Int, nullsInLists: Bool = false,
    literal: (String, inout SplitMix64) -> Value
) -> Filter {
    func sub() -> Filter {
        randomFilter(&rng, columns: columns, depth: depth - 1, nullsInLists: nullsInLists, literal: literal)
    }
    let column = columns.randomElement(using: &rng)!
    switch Int.random(in: 0..<(depth > 0 ? 9 : 5), using: &rng) {
    case 0, 1: return .compare(column: column, Comparison.allCases.randomElement(using: &rng)!, literal(column, &rng))
    case 2: return .between(column: column, literal(column, &rng), literal(column, &rng))
    case 3:
        return .isIn(
            column: column,
            (0..<Int.random(in: 1...3, using: &rng)).map { _ in
                nullsInLists && Int.random(in: 0..<8, using: &rng) == 0 ? .null : literal(column, &rng)
            })
    case 4: return Bool.random(using: &rng) ? .isNull(column: column) : .isNotNull(column: column)
    case 5, 6: return .and((0..<Int.random(in: 2...3, using: &rng)).map { _ in sub() })
    case 7: return .or((0..<Int.random(in: 2...3, using: &rng)).map { _ in sub() })
    default: return .not(sub())
    }
}
