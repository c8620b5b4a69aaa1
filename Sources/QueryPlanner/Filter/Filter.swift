/// A scalar value in a row or a filter literal.
public enum Value: Hashable, Sendable, CustomStringConvertible {
    case integer(Int64)
    case real(Double)
    case text(String)
    case boolean(Bool)
    /// Bytes; stored and returned, never compared by filters.
    case blob([UInt8])
    case null

    public var description: String {
        switch self {
        case .integer(let v): String(v)
        case .real(let v): String(v)
        case .text(let v): quoted(v, with: "'")
        case .boolean(let v): v ? "TRUE" : "FALSE"
        case .blob(let v): "x'" + v.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + "'"
        case .null: "NULL"
        }
    }

    /// The value when it is an integer; nil otherwise.
    public var integerValue: Int64? { if case .integer(let v) = self { v } else { nil } }
    /// The value when it is a real or an integer (widened); nil otherwise.
    public var realValue: Double? {
        switch self {
        case .real(let v): v
        case .integer(let v): Double(v)
        default: nil
        }
    }
    /// The value when it is text; nil otherwise.
    public var textValue: String? { if case .text(let v) = self { v } else { nil } }
    /// The value when it is a boolean; nil otherwise.
    public var booleanValue: Bool? { if case .boolean(let v) = self { v } else { nil } }
    /// The bytes when it is a blob; nil otherwise.
    public var blobValue: [UInt8]? { if case .blob(let v) = self { v } else { nil } }

    /// Numeric view for comparisons across integer, real and boolean.
    package var number: Double? {
        switch self {
        case .integer(let v): Double(v)
        case .real(let v): v
        case .boolean(let v): v ? 1 : 0
        default: nil
        }
    }
}

/// A comparison operator of the filter syntax.
public enum Comparison: String, Hashable, Sendable, CaseIterable {
    case equal = "="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
}

/// A filter over a row's columns, as a tree. Built from the Swift DSL, the string syntax or the JSON form;
/// all three give the same tree.
///
/// Semantics are SQL's three-valued logic: a comparison with NULL is unknown, `NOT unknown` is unknown,
/// and a row matches only when the whole filter is true.
public indirect enum Filter: Hashable, Sendable {
    case and([Filter])
    case or([Filter])
    case not(Filter)
    case compare(column: String, Comparison, Value)
    case between(column: String, Value, Value)
    case isIn(column: String, [Value])
    case isNull(column: String)
    case isNotNull(column: String)

    /// Every column the filter reads, in first-use order.
    public var columns: [String] {
        var seen: [String] = []
        func visit(_ f: Filter) {
            switch f {
            case .and(let fs), .or(let fs): fs.forEach(visit)
            case .not(let f): visit(f)
            case .compare(let c, _, _), .between(let c, _, _), .isIn(let c, _), .isNull(let c), .isNotNull(let c):
                if !seen.contains(c) { seen.append(c) }
            }
        }
        visit(self)
        return seen
    }
}

/// Three-valued comparison of a row value with a literal: nil when either is NULL or they are incomparable.
package func compareValues(_ a: Value, _ b: Value) -> Int? {
    if a == .null || b == .null { return nil }
    if let x = a.number, let y = b.number { return x < y ? -1 : (x > y ? 1 : 0) }
    // Text compares by UTF-8 bytes, as SQLite's BINARY collation does (not by Unicode canonical order).
    if case .text(let x) = a, case .text(let y) = b {
        if x.utf8.elementsEqual(y.utf8) { return 0 }
        return x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : 1
    }
    return nil
}
