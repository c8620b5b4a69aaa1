/// Column data a predicate reads: one array of values per column, indexed by row slot.
package protocol ColumnSource {
    /// The values of `column`, or nil when the collection has no such column.
    func values(of column: String) -> [Value]?
}

extension Filter {
    /// Compiles the filter into a closure over row slots that returns true when the row matches
    /// (SQL semantics: unknown counts as no match).
    /// - Throws: `FilterError` when a column is missing from `source`.
    package func predicate(over source: some ColumnSource) throws(FilterError) -> @Sendable (Int) -> Bool {
        let tri = try compileTri(source)
        return { tri($0) == true }
    }

    /// Three-valued: true, false, or nil for unknown.
    private func compileTri(_ source: some ColumnSource) throws(FilterError) -> @Sendable (Int) -> Bool? {
        func column(_ name: String) throws(FilterError) -> [Value] {
            guard let values = source.values(of: name) else {
                throw FilterError(offset: nil, "unknown column '\(name)'")
            }
            return values
        }
        switch self {
        case .and(let children), .or(let children):
            // AND: any false decides, else any unknown; OR: any true decides, else any unknown.
            let decisive = if case .and = self { false } else { true }
            var compiled: [@Sendable (Int) -> Bool?] = []
            for c in children { compiled.append(try c.compileTri(source)) }
            let parts = compiled
            return { row in
                var unknown = false
                for p in parts {
                    switch p(row) {
                    case decisive?: return decisive
                    case nil: unknown = true
                    default: break
                    }
                }
                return unknown ? nil : !decisive
            }
        case .not(let child):
            let inner = try child.compileTri(source)
            return { row in inner(row).map { !$0 } }
        case .compare(let name, let op, let literal):
            let values = try column(name)
            return { row in
                guard let c = compareValues(values[row], literal) else { return nil }
                switch op {
                case .equal: return c == 0
                case .notEqual: return c != 0
                case .less: return c < 0
                case .lessOrEqual: return c <= 0
                case .greater: return c > 0
                case .greaterOrEqual: return c >= 0
                }
            }
        case .between(let name, let low, let high):
            let values = try column(name)
            return { row in
                guard let a = compareValues(values[row], low), let b = compareValues(values[row], high) else {
                    return nil
                }
                return a >= 0 && b <= 0
            }
        case .isIn(let name, let list):
            let values = try column(name)
            let set = Set(list.filter { $0 != .null })
            let numbers = Set(list.compactMap(\.number))
            let hasNull = list.contains(.null)
            return { row in
                let v = values[row]
                if v == .null { return nil }
                if set.contains(v) { return true }
                if let n = v.number, numbers.contains(n) { return true }
                return hasNull ? nil : false
            }
        case .isNull(let name):
            let values = try column(name)
            return { row in values[row] == .null }
        case .isNotNull(let name):
            let values = try column(name)
            return { row in values[row] != .null }
        }
    }
}
