// The string syntax of filters (FORMAT.md, plus IS [NOT] NULL, NOT IN, NOT BETWEEN, TRUE/FALSE):
//
//   filter     := or
//   or         := and ("OR" and)*
//   and        := unary ("AND" unary)*
//   unary      := "NOT" unary | "(" filter ")" | predicate
//   predicate  := column ( op value
//                        | ["NOT"] "BETWEEN" value "AND" value
//                        | ["NOT"] "IN" "(" value ("," value)* ")"
//                        | "IS" ["NOT"] "NULL" )
//   op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//   value      := integer | real | 'text' ('' escapes a quote) | TRUE | FALSE | NULL
//   column     := [A-Za-z_][A-Za-z0-9_]* | "double-quoted"
//
// Keywords are case-insensitive. Errors name the byte offset and what was expected there.

extension Filter {
    /// Parses the string syntax.
    /// - Throws: `FilterError` with the offset, e.g. "expected a value after '<' at offset 14".
    public init(parsing text: String) throws(FilterError) {
        var parser = FilterParser(text)
        self = try parser.parseAll()
    }
}

struct FilterParser {
    enum Token: Equatable {
        case identifier(String)
        case quotedIdentifier(String)
        case integer(Int64)
        case real(Double)
        case string(String)
        case symbol(String)
        case end
    }

    let bytes: [UInt8]
    var position = 0
    var token: Token = .end
    var tokenStart = 0
    /// Byte range of the previous token (for messages; no string is made unless an error needs it).
    var previous = 0..<0
    /// Open parentheses and NOTs around the current position: bounded, so a hostile filter cannot exhaust
    /// the stack (here, or in the recursive passes over the tree after parsing).
    var depth = 0
    static let maximumDepth = 1000

    init(_ text: String) { bytes = Array(text.utf8) }

    mutating func parseAll() throws(FilterError) -> Filter {
        try advance()
        if token == .end { throw FilterError(offset: 0, "expected a filter, found nothing") }
        let result = try parseOr()
        guard token == .end else {
            throw FilterError(offset: tokenStart, "expected AND, OR or the end after \(describe(previous: true))")
        }
        return result
    }

    // MARK: Grammar

    mutating func parseOr() throws(FilterError) -> Filter {
        var parts = [try parseAnd()]
        while isKeyword("OR") {
            try advance()
            parts.append(try parseAnd())
        }
        return parts.count == 1 ? parts[0] : Filter.or(parts).normalized
    }

    mutating func parseAnd() throws(FilterError) -> Filter {
        var parts = [try parseUnary()]
        while isKeyword("AND") {
            try advance()
            parts.append(try parseUnary())
        }
        return parts.count == 1 ? parts[0] : Filter.and(parts).normalized
    }

    mutating func parseUnary() throws(FilterError) -> Filter {
        if isKeyword("NOT") || token == .symbol("(") {
            guard depth < Self.maximumDepth else {
                throw FilterError(
                    offset: tokenStart, "the filter nests deeper than \(Self.maximumDepth) parentheses or NOTs")
            }
        }
        depth += 1
        defer { depth -= 1 }
        if isKeyword("NOT") {
            try advance()
            return .not(try parseUnary())
        }
        if token == .symbol("(") {
            let open = tokenStart
            try advance()
            let inner = try parseOr()
            guard token == .symbol(")") else {
                throw FilterError(
                    offset: tokenStart, "expected ')' to close the '(' at offset \(open), found \(describe())")
            }
            try advance()
            return inner
        }
        return try parsePredicate()
    }

    mutating func parsePredicate() throws(FilterError) -> Filter {
        let column: String
        switch token {
        case .identifier(let name) where !Self.isReserved(name): column = name
        case .quotedIdentifier(let name): column = name
        default: throw FilterError(offset: tokenStart, "expected a column name, found \(describe())")
        }
        try advance()
        if case .symbol(let op) = token, let comparison = Self.comparison(op) {
            try advance()
            return .compare(column: column, comparison, try parseValue(after: "'\(op)'"))
        }
        var negated = false
        if isKeyword("NOT") {
            negated = true
            try advance()
        }
        if isKeyword("BETWEEN") {
            try advance()
            let low = try parseValue(after: "BETWEEN")
            guard isKeyword("AND") else {
                throw FilterError(
                    offset: tokenStart, "expected AND after the low bound of BETWEEN, found \(describe())")
            }
            try advance()
            let high = try parseValue(after: "AND")
            let f = Filter.between(column: column, low, high)
            return negated ? .not(f) : f
        }
        if isKeyword("IN") {
            try advance()
            guard token == .symbol("(") else {
                throw FilterError(offset: tokenStart, "expected '(' after IN, found \(describe())")
            }
            try advance()
            var values = [try parseValue(after: "'('")]
            while token == .symbol(",") {
                try advance()
                values.append(try parseValue(after: "','"))
            }
            guard token == .symbol(")") else {
                throw FilterError(offset: tokenStart, "expected ',' or ')' in the IN list, found \(describe())")
            }
            try advance()
            let f = Filter.isIn(column: column, values)
            return negated ? .not(f) : f
        }
        if !negated && isKeyword("IS") {
            try advance()
            var not = false
            if isKeyword("NOT") {
                not = true
                try advance()
            }
            guard isKeyword("NULL") else {
                throw FilterError(offset: tokenStart, "expected NULL after IS\(not ? " NOT" : ""), found \(describe())")
            }
            try advance()
            return not ? .isNotNull(column: column) : .isNull(column: column)
        }
        throw FilterError(
            offset: tokenStart,
            negated
                ? "expected BETWEEN or IN after NOT, found \(describe())"
                : "expected a comparison (=, !=, <, <=, >, >=, BETWEEN, IN, IS) after column '\(column)', found \(describe())"
        )
    }

    mutating func parseValue(after what: String) throws(FilterError) -> Value {
        var sign: Double = 1
        if token == .symbol("-") {
            sign = -1
            try advance()
        }
        let value: Value
        switch token {
        case .integer(let v): value = .integer(sign < 0 ? -v : v)
        case .real(let v): value = .real(sign * v)
        case .string(let s) where sign > 0: value = .text(s)
        case .identifier(let word) where sign > 0 && Self.equalsIgnoringCase(word, "TRUE"): value = .boolean(true)
        case .identifier(let word) where sign > 0 && Self.equalsIgnoringCase(word, "FALSE"): value = .boolean(false)
        case .identifier(let word) where sign > 0 && Self.equalsIgnoringCase(word, "NULL"): value = .null
        default: throw FilterError(offset: tokenStart, "expected a value after \(what), found \(describe())")
        }
        try advance()
        return value
    }

    // MARK: Tokens

    static func comparison(_ symbol: String) -> Comparison? {
        switch symbol {
        case "=", "==": .equal
        case "!=", "<>": .notEqual
        case "<": .less
        case "<=": .lessOrEqual
        case ">": .greater
        case ">=": .greaterOrEqual
        default: nil
        }
    }

    /// Whether the current token is `word` (given in upper case), compared ASCII case-insensitively.
    func isKeyword(_ word: StaticString) -> Bool {
        guard case .identifier(let name) = token else { return false }
        return Self.equalsIgnoringCase(name, word)
    }

    static func equalsIgnoringCase(_ name: String, _ word: StaticString) -> Bool {
        let upper = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard name.utf8.count == upper.count else { return false }
        for (a, b) in zip(name.utf8, upper) where (a >= 0x61 && a <= 0x7A ? a - 0x20 : a) != b { return false }
        return true
    }

    static func isReserved(_ name: String) -> Bool {
        guard name.utf8.count <= 7 else { return false }
        return equalsIgnoringCase(name, "AND") || equalsIgnoringCase(name, "OR") || equalsIgnoringCase(name, "NOT")
            || equalsIgnoringCase(name, "BETWEEN") || equalsIgnoringCase(name, "IN") || equalsIgnoringCase(name, "IS")
            || equalsIgnoringCase(name, "NULL") || equalsIgnoringCase(name, "TRUE") || equalsIgnoringCase(name, "FALSE")
    }

    func describe(previous: Bool = false) -> String {
        if previous {
            return self.previous.isEmpty
                ? "the start" : "'" + String(decoding: bytes[self.previous], as: UTF8.self) + "'"
        }
        if token == .end { return "the end" }
        let end = min(position, bytes.count)
        return "'" + String(decoding: bytes[tokenStart..<end], as: UTF8.self) + "'"
    }

    mutating func advance() throws(FilterError) {
        if tokenStart < position { previous = tokenStart..<min(position, bytes.count) }
        while position < bytes.count,
            bytes[position] == 0x20 || bytes[position] == 0x09 || bytes[position] == 0x0A || bytes[position] == 0x0D
        {
            position += 1
        }
        tokenStart = position
        guard position < bytes.count else {
            token = .end
            return
        }
        let c = bytes[position]
        func isIdentifierStart(_ b: UInt8) -> Bool {
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b >= 0x80
        }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        if isIdentifierStart(c) {
            while position < bytes.count, isIdentifierStart(bytes[position]) || isDigit(bytes[position]) {
                position += 1
            }
            token = .identifier(String(decoding: bytes[tokenStart..<position], as: UTF8.self))
            return
        }
        if isDigit(c) || (c == 0x2E && position + 1 < bytes.count && isDigit(bytes[position + 1])) {
            var isReal = false
            while position < bytes.count, isDigit(bytes[position]) { position += 1 }
            if position < bytes.count, bytes[position] == 0x2E {
                isReal = true
                position += 1
                while position < bytes.count, isDigit(bytes[position]) { position += 1 }
            }
            if position < bytes.count, bytes[position] == 0x65 || bytes[position] == 0x45 {
                isReal = true
                position += 1
                if position < bytes.count, bytes[position] == 0x2B || bytes[position] == 0x2D { position += 1 }
                guard position < bytes.count, isDigit(bytes[position]) else {
                    throw FilterError(offset: position, "expected digits in the exponent of a number")
                }
                while position < bytes.count, isDigit(bytes[position]) { position += 1 }
            }
            let text = String(decoding: bytes[tokenStart..<position], as: UTF8.self)
            if !isReal, let v = Int64(text) {
                token = .integer(v)
            } else if let v = Double(text), v.isFinite {
                token = .real(v)
            } else {
                throw FilterError(offset: tokenStart, "number \(text) is out of range")
            }
            return
        }
        if c == 0x27 || c == 0x22 {  // ' or "
            var out: [UInt8] = []
            position += 1
            while true {
                guard position < bytes.count else {
                    throw FilterError(
                        offset: tokenStart,
                        c == 0x27 ? "unterminated string starting" : "unterminated quoted column name starting")
                }
                if bytes[position] == c {
                    if position + 1 < bytes.count, bytes[position + 1] == c {
                        out.append(c)
                        position += 2
                        continue
                    }
                    position += 1
                    break
                }
                out.append(bytes[position])
                position += 1
            }
            let s = String(decoding: out, as: UTF8.self)
            token = c == 0x27 ? .string(s) : .quotedIdentifier(s)
            return
        }
        for symbol in ["<=", ">=", "!=", "<>", "==", "=", "<", ">", "(", ")", ",", "-"] {
            let s = Array(symbol.utf8)
            if position + s.count <= bytes.count, Array(bytes[position..<position + s.count]) == s {
                position += s.count
                token = .symbol(symbol)
                return
            }
        }
        throw FilterError(offset: position, "unexpected character '\(String(decoding: [c], as: UTF8.self))'")
    }
}

extension Filter {
    /// The same filter with nested ANDs and ORs flattened and one-element ANDs and ORs unwrapped. Parsing,
    /// the DSL and the JSON form all produce normalised trees.
    public var normalized: Filter {
        switch self {
        case .and(let children):
            let flat = children.map(\.normalized).flatMap { child -> [Filter] in
                if case .and(let inner) = child { return inner } else { return [child] }
            }
            return flat.count == 1 ? flat[0] : .and(flat)
        case .or(let children):
            let flat = children.map(\.normalized).flatMap { child -> [Filter] in
                if case .or(let inner) = child { return inner } else { return [child] }
            }
            return flat.count == 1 ? flat[0] : .or(flat)
        case .not(let inner): return .not(inner.normalized)
        default: return self
        }
    }
}

extension Filter: CustomStringConvertible {
    /// The string syntax; parsing it gives back the same (normalised) tree.
    public var description: String {
        switch self {
        case .and(let children): return children.map { $0.printed(inside: .and) }.joined(separator: " AND ")
        case .or(let children): return children.map { $0.printed(inside: .or) }.joined(separator: " OR ")
        case .not(let inner): return "NOT (\(inner))"
        case .compare(let column, let op, let value):
            return "\(Self.quote(column)) \(op.rawValue) \(Self.literal(value))"
        case .between(let column, let low, let high):
            return "\(Self.quote(column)) BETWEEN \(Self.literal(low)) AND \(Self.literal(high))"
        case .isIn(let column, let values):
            return "\(Self.quote(column)) IN (\(values.map(Self.literal).joined(separator: ", ")))"
        case .isNull(let column): return "\(Self.quote(column)) IS NULL"
        case .isNotNull(let column): return "\(Self.quote(column)) IS NOT NULL"
        }
    }

    private enum Context { case and, or }

    private func printed(inside context: Context) -> String {
        switch (self, context) {
        case (.or, _), (.and, .or), (.and, .and): return "(\(self))"
        default: return description
        }
    }

    static func quote(_ column: String) -> String {
        let plain =
            column.utf8.first.map { !($0 >= 0x30 && $0 <= 0x39) } ?? false
            && column.utf8.allSatisfy {
                ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || ($0 >= 0x30 && $0 <= 0x39)
            }
            && !FilterParser.isReserved(column)
        return plain ? column : quoted(column, with: "\"")
    }

    static func literal(_ value: Value) -> String {
        switch value {
        case .real(let v):
            let text = "\(v)"
            return text.contains(".") || text.contains("e") || text.contains("E") ? text : text + ".0"
        default: return value.description
        }
    }
}
