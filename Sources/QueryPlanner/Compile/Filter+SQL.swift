/// A parameterised SQL condition: text with `?` placeholders and the values to bind, in order.
package struct SQLCondition: Sendable, Equatable {
    public var text: String
    public var arguments: [Value]
    public init(text: String, arguments: [Value]) {
        self.text = text
        self.arguments = arguments
    }
}

/// `parts` joined by `op` as a balanced tree of parenthesised groups of at most 8, so that SQLite's
/// expression tree is O(log n) deep, not n (a left-deep chain of 6,000 ORs exceeds its depth limit of 1,000).
private func balanced(_ parts: ArraySlice<String>, _ op: String) -> String {
    if parts.count <= 8 { return parts.joined(separator: " \(op) ") }
    let middle = parts.startIndex + parts.count / 2
    return "(" + balanced(parts[..<middle], op) + ") \(op) (" + balanced(parts[middle...], op) + ")"
}

extension Filter {
    /// The most values one compiled filter may bind (SQLite's default limit on parameters is 32,766).
    public static let maximumSQLArguments = 32_000

    /// Compiles to an SQL condition over the store's own column identifiers. No user text reaches the SQL:
    /// columns are mapped by `identifier` (which returns store-made names such as `c3`), and every literal
    /// becomes a bound `?`.
    /// - Parameters:
    ///   - identifier: the SQL identifier of a column, or nil when unknown.
    ///   - isBoolean: whether a column stores booleans as 0/1 integers (so TRUE binds as 1).
    /// - Throws: `FilterError` for unknown columns.
    package func sql(
        identifier: (String) -> String?, isBoolean: (String) -> Bool = { _ in false }
    ) throws(FilterError)
        -> SQLCondition
    {
        var arguments: [Value] = []
        func bind(_ value: Value) -> String {
            if case .boolean(let b) = value {
                arguments.append(.integer(b ? 1 : 0))
            } else {
                arguments.append(value)
            }
            return "?"
        }
        func column(_ name: String) throws(FilterError) -> String {
            guard let id = identifier(name) else { throw FilterError(offset: nil, "unknown column '\(name)'") }
            return id
        }
        func render(_ f: Filter) throws(FilterError) -> String {
            switch f {
            case .and(let children):
                var parts: [String] = []
                for c in children { parts.append("(" + (try render(c)) + ")") }
                return balanced(parts[...], "AND")
            case .or(let children):
                var parts: [String] = []
                for c in children { parts.append("(" + (try render(c)) + ")") }
                return balanced(parts[...], "OR")
            case .not(let inner):
                return "NOT (" + (try render(inner)) + ")"
            case .compare(let name, let op, let value):
                let sqlOp = op == .notEqual ? "<>" : op.rawValue
                return "\(try column(name)) \(sqlOp) \(bind(value))"
            case .between(let name, let low, let high):
                return "\(try column(name)) BETWEEN \(bind(low)) AND \(bind(high))"
            case .isIn(let name, let values):
                let id = try column(name)
                return "\(id) IN (" + values.map { bind($0) }.joined(separator: ", ") + ")"
            case .isNull(let name):
                return "\(try column(name)) IS NULL"
            case .isNotNull(let name):
                return "\(try column(name)) IS NOT NULL"
            }
        }
        let text = try render(self)
        guard arguments.count <= Self.maximumSQLArguments else {
            throw FilterError(
                offset: nil,
                "the filter has \(arguments.count) values; at most \(Self.maximumSQLArguments) can be bound (use fewer IN or OR terms)"
            )
        }
        return SQLCondition(text: text, arguments: arguments)
    }
}
