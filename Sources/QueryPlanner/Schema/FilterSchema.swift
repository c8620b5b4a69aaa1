/// The column types a filter can be checked against. (The engine's schema maps onto this.)
package enum FilterColumnType: String, Sendable {
    case integer, real, text, boolean, blob
}

extension Filter {
    /// Checks every column exists and every literal fits its column's type (numbers with numbers, text
    /// with text, booleans with booleans; NULL only in `IN` lists, which never match it, or via IS NULL).
    /// - Parameter columnType: the type of a column, or nil when the collection has no such column.
    /// - Throws: `FilterError` naming the column.
    package func validate(_ columnType: (String) -> FilterColumnType?) throws(FilterError) {
        func check(_ column: String, _ value: Value, _ what: String) throws(FilterError) {
            guard let type = columnType(column) else { throw FilterError(offset: nil, "unknown column '\(column)'") }
            let ok: Bool =
                switch (type, value) {
                case (.integer, .integer), (.integer, .real), (.real, .integer), (.real, .real): true
                case (.text, .text), (.boolean, .boolean), (.boolean, .integer): true
                default: false
                }
            guard ok else {
                throw FilterError(
                    offset: nil, "column '\(column)' is \(type.rawValue); \(what) \(value) does not compare with it")
            }
        }
        switch self {
        case .and(let children), .or(let children):
            for c in children { try c.validate(columnType) }
        case .not(let inner):
            try inner.validate(columnType)
        case .compare(let column, _, let value):
            if value == .null {
                throw FilterError(
                    offset: nil, "comparing column '\(column)' with NULL is never true; use IS NULL or IS NOT NULL")
            }
            try check(column, value, "the value")
        case .between(let column, let low, let high):
            try check(column, low, "the low bound")
            try check(column, high, "the high bound")
        case .isIn(let column, let values):
            for v in values where v != .null { try check(column, v, "the list value") }
            if values.allSatisfy({ $0 == .null }), columnType(column) == nil {
                throw FilterError(offset: nil, "unknown column '\(column)'")
            }
        case .isNull(let column), .isNotNull(let column):
            guard columnType(column) != nil else { throw FilterError(offset: nil, "unknown column '\(column)'") }
        }
    }
}
