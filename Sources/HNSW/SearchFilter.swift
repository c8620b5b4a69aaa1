/// A set of node ids as a bitmap. - Complexity: O(1) membership; `count / 8` bytes.
public struct NodeBitset: Sendable, Equatable {
    public private(set) var words: [UInt64]
    /// The number of node ids the set can hold (ids `0..<capacity`).
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
        words = Array(repeating: 0, count: (capacity + 63) / 64)
    }

    /// - Precondition: `node < capacity`.
    public mutating func insert(_ node: UInt32) {
        precondition(Int(node) < capacity, "node \(node) outside a bitset of capacity \(capacity)")
        words[Int(node) >> 6] |= 1 << (UInt64(node) & 63)
    }

    public func contains(_ node: UInt32) -> Bool {
        Int(node) < capacity && words[Int(node) >> 6] & (1 << (UInt64(node) & 63)) != 0
    }

    /// The number of members. - Complexity: O(capacity / 64).
    public var population: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }
}

/// Which nodes a filtered search may return.
public enum SearchFilter: Sendable {
    /// Nodes whose id is in the set.
    case bitset(NodeBitset)
    /// Nodes for which the closure returns true. Called from the searching thread only.
    case predicate(@Sendable (UInt32) -> Bool)
}

/// How a filtered search walks the graph.
///
/// - `admitMatching` (mode a): traverse every node as an unfiltered search would, admit only matching
///   nodes to the result. Wins for wide filters (≳ 10 % of rows): the graph stays fully connected and
///   few distance computations are wasted.
/// - `matchingOnly` (mode b, after ACORN-1): compute distances only for matching nodes, reaching them
///   through non-matching neighbours (two hops) so the search does not get stuck. Wins for restrictive
///   filters (≲ 5 %), where mode a spends most distance computations on nodes it cannot return.
///   The benchmark's `ann` mode reports both; `Benchmarks/README.md` has the numbers.
public enum FilteredSearchMode: String, Sendable, CaseIterable {
    case admitMatching
    case matchingOnly
}

/// Evaluated per node on the hot path; generic so each kind of filter gets its own specialised loop.
package protocol NodePredicate {
    func matches(_ node: UInt32) -> Bool
}

package struct AllNodes: NodePredicate {
    @inline(__always) package func matches(_ node: UInt32) -> Bool { true }
}

/// Unsafe: reads a bitset lent for the duration of one search (`NodeBitset.withPredicate`).
@unsafe package struct BitsetPredicate: NodePredicate {
    let words: UnsafePointer<UInt64>
    let capacity: Int
    @inline(__always) package func matches(_ node: UInt32) -> Bool {
        // SAFETY: the word index is < (capacity + 63) / 64, the length of `words`, when node < capacity.
        unsafe Int(node) < capacity && words[Int(node) &>> 6] & (1 &<< (UInt64(node) & 63)) != 0
    }
}

package struct ClosurePredicate: NodePredicate {
    let body: (UInt32) -> Bool
    @inline(__always) package func matches(_ node: UInt32) -> Bool { body(node) }
}
