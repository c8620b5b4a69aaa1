// Keyword queries. By default the user's text is a list of words, each searched as itself (OR, ranked by
// BM25): characters FTS5 reads as syntax (quotes, `*`, `-`, `:`, `^`, `+`, parentheses, NEAR, AND/OR/NOT)
// are then just part of the words. FTS5's own query syntax is there when asked for; it is parsed here, not by
// SQLite, so an error names its byte offset, column names are checked against the searchable columns, and
// what reaches SQLite is re-rendered from the tree (every term quoted), always as a bound parameter:
//
//   query    := or
//   or       := and ("OR" and)*
//   and      := not (["AND"] not)*             (adjacent queries are ANDed)
//   not      := item ("NOT" item)*
//   item     := [["-"] colspec ":"] ( "(" query ")" | near | ["^"] phrase )
//   near     := "NEAR" "(" phrase+ ["," integer] ")"
//   phrase   := term ["*"] ("+" term ["*"])*
//   term     := bareword | "quoted" ("" escapes a quote)
//   colspec  := column | "{" column+ "}"
//
// Barewords are runs of ASCII letters, digits, `_` and any non-ASCII character; AND, OR, NOT and NEAR are
// keywords in upper case only (as in FTS5).

/// A keyword query for the searchable columns.
public struct TextQuery: Sendable, Equatable, CustomStringConvertible {
    public enum Syntax: String, Sendable, Codable, CaseIterable {
        /// The text is words, each searched as itself; a row matching any of them is a candidate.
        case words
        /// FTS5's query syntax (phrases, prefixes, NEAR, AND/OR/NOT, column filters).
        case fts5
    }

    public var text: String
    public var syntax: Syntax

    public init(_ text: String, syntax: Syntax = .words) {
        self.text = text
        self.syntax = syntax
    }

    public var description: String { syntax == .words ? text : "fts5: " + text }

    /// At most this many phrases in one query (each is counted per scope for BM25).
    public static let maximumPhrases = 256
}

/// A keyword query that cannot be searched, with the byte offset of the problem.
public struct TextQueryError: Error, Equatable, Sendable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public init(offset: Int, _ message: String) {
        self.offset = offset
        self.message = message
    }
    public var description: String { "\(message) at offset \(offset)" }
}

/// A keyword query as FTS5 reads it: the MATCH expression, and each of its phrases alone (with its column
/// filter) in the order FTS5 numbers them, to count the documents that hold it in a scope.
package struct CompiledTextQuery: Sendable, Equatable {
    public var match: String
    public var phrases: [String]
    /// A words query's words, in phrase order (nil for FTS5 syntax): each phrase is one of them, quoted.
    public var words: [String]? = nil
}

extension TextQuery {
    /// The FTS5 form of the query. `column` maps a column name to its name in the index (nil: not searchable).
    /// - Throws: `TextQueryError` (nothing to search for, a syntax error, an unknown column, too many phrases).
    package func compiled(column: (String) -> String?) throws(TextQueryError) -> CompiledTextQuery {
        switch syntax {
        case .words:
            // NUL separates words too: FTS5 reads its query as a C string, so a NUL inside a term would end it.
            let words = Self.words(text)
            guard !words.isEmpty else { throw TextQueryError(offset: 0, "expected words to search for, found nothing") }
            guard words.count <= Self.maximumPhrases else {
                throw TextQueryError(offset: 0, "at most \(Self.maximumPhrases) words, got \(words.count)")
            }
            let phrases = words.map(quotedTerm)
            return CompiledTextQuery(match: phrases.joined(separator: " OR "), phrases: phrases, words: words)
        case .fts5:
            return try withoutActuallyEscaping(column) { column throws(TextQueryError) in
                var parser = TextQueryParser(text, column: column)
                return try parser.parseAll()
            }
        }
    }
}

extension TextQuery {
    /// The words of a words query: the text split at whitespace (as `Character.isWhitespace`) and NULs.
    package static func words(_ text: String) -> [String] {
        // ASCII text (the common case) splits by byte, not by grapheme (which cost several µs of a keyword query):
        // the ASCII characters that are whitespace are exactly 9–13 and 32 (a CR LF pair is one whitespace
        // character either way).
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            return text.utf8.split(whereSeparator: { $0 == 32 || (9...13).contains($0) || $0 == 0 }).map {
                String(Substring($0))
            }
        }
        return text.split(whereSeparator: { $0.isWhitespace || $0.unicodeScalars.contains("\0") }).map(String.init)
    }
}

/// A term as an FTS5 string: in double quotes, a quote doubled; never read as syntax.
func quotedTerm(_ term: String) -> String {
    guard term.utf8.contains(UInt8(ascii: "\"")) else { return "\"" + term + "\"" }
    return "\"" + String(String.UnicodeScalarView(term.unicodeScalars.flatMap { $0 == "\"" ? [$0, $0] : [$0] }))
        + "\""
}

struct TextQueryParser {
    let bytes: [UInt8]
    let column: (String) -> String?
    var position = 0
    var phrases: [String] = []
    /// Column filter of the enclosing items, rendered (for each phrase alone).
    var columns: [String] = []
    var depth = 0
    static let maximumDepth = 200

    init(_ text: String, column: @escaping (String) -> String?) {
        bytes = Array(text.utf8)
        self.column = column
    }

    mutating func parseAll() throws(TextQueryError) -> CompiledTextQuery {
        if let nul = bytes.firstIndex(of: 0) {
            throw TextQueryError(
                offset: nul, "a NUL character cannot be searched for (FTS5 reads its query as a C string)")
        }
        skipSpace()
        guard position < bytes.count else { throw TextQueryError(offset: 0, "expected a query, found nothing") }
        let match = try parseOr()
        skipSpace()
        guard position == bytes.count else {
            throw TextQueryError(offset: position, "expected AND, OR, NOT, a term or the end")
        }
        guard phrases.count <= TextQuery.maximumPhrases else {
            throw TextQueryError(offset: 0, "at most \(TextQuery.maximumPhrases) phrases, got \(phrases.count)")
        }
        return CompiledTextQuery(match: match, phrases: phrases)
    }

    // MARK: Grammar

    mutating func parseOr() throws(TextQueryError) -> String {
        var parts = [try parseAnd()]
        while keyword("OR") { parts.append(try parseAnd()) }
        return parts.count == 1 ? parts[0] : "(" + parts.joined(separator: " OR ") + ")"
    }

    mutating func parseAnd() throws(TextQueryError) -> String {
        var parts = [try parseNot()]
        while true {
            if keyword("AND") {
                parts.append(try parseNot())
            } else if startsItem() {
                parts.append(try parseNot())
            } else {
                break
            }
        }
        return parts.count == 1 ? parts[0] : "(" + parts.joined(separator: " AND ") + ")"
    }

    mutating func parseNot() throws(TextQueryError) -> String {
        var result = try parseItem()
        while keyword("NOT") { result = "(" + result + " NOT " + (try parseItem()) + ")" }
        return result
    }

    mutating func parseItem() throws(TextQueryError) -> String {
        skipSpace()
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else {
            throw TextQueryError(offset: position, "query nested deeper than \(Self.maximumDepth) levels")
        }
        let start = position
        var filter = ""
        if let spec = try parseColumnFilter() {
            filter = spec
            columns.append(spec)
        }
        defer { if !filter.isEmpty { columns.removeLast() } }
        skipSpace()
        guard position < bytes.count else {
            throw TextQueryError(
                offset: position,
                start == position ? "expected a term, found the end" : "expected a term after the column filter")
        }
        let body: String
        if bytes[position] == UInt8(ascii: "(") {
            position += 1
            body = "(" + (try parseOr()) + ")"
            skipSpace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ")") else {
                throw TextQueryError(offset: position, "expected ')'")
            }
            position += 1
        } else if peekKeyword("NEAR"), nextNonSpace(after: position + 4) == UInt8(ascii: "(") {
            position += 4
            skipSpace()
            position += 1
            var group: [String] = []
            while true {
                skipSpace()
                guard position < bytes.count else {
                    throw TextQueryError(offset: position, "expected a phrase or ')' in NEAR")
                }
                if bytes[position] == UInt8(ascii: ")") || bytes[position] == UInt8(ascii: ",") { break }
                group.append(try parsePhrase(initial: false))
            }
            guard !group.isEmpty else { throw TextQueryError(offset: position, "NEAR needs at least one phrase") }
            var distance = ""
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                skipSpace()
                let digits = position
                while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                    position += 1
                }
                guard position > digits, position - digits <= 9 else {
                    throw TextQueryError(offset: digits, "expected a distance (a whole number) after ',' in NEAR")
                }
                distance = ", " + String(decoding: bytes[digits..<position], as: UTF8.self)
                skipSpace()
            }
            guard position < bytes.count, bytes[position] == UInt8(ascii: ")") else {
                throw TextQueryError(offset: position, "expected ')' to close NEAR")
            }
            position += 1
            body = "NEAR(" + group.joined(separator: " ") + distance + ")"
        } else {
            var initial = false
            if bytes[position] == UInt8(ascii: "^") {
                initial = true
                position += 1
            }
            body = try parsePhrase(initial: initial)
        }
        return filter.isEmpty ? body : filter + " : " + body
    }

    /// `[-] column :` or `[-] {a b} :`, rendered with the index's column names; nil (nothing consumed) if none.
    mutating func parseColumnFilter() throws(TextQueryError) -> String? {
        let start = position
        var negated = false
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") {
            negated = true
            position += 1
            skipSpace()
        }
        var names: [(String, Int)] = []
        if position < bytes.count, bytes[position] == UInt8(ascii: "{") {
            position += 1
            while true {
                skipSpace()
                guard position < bytes.count else { throw TextQueryError(offset: position, "expected a column or '}'") }
                if bytes[position] == UInt8(ascii: "}") { position += 1; break }
                let at = position
                guard let name = bareword() else { throw TextQueryError(offset: at, "expected a column name in '{ }'") }
                names.append((name, at))
            }
            guard !names.isEmpty else { throw TextQueryError(offset: start, "expected at least one column in '{ }'") }
            skipSpace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
                throw TextQueryError(offset: position, "expected ':' after the column filter")
            }
            position += 1
        } else {
            let at = position
            guard let name = bareword(), !["AND", "OR", "NOT"].contains(name) else {
                if negated { throw TextQueryError(offset: at, "expected a column filter after '-'") }
                position = start
                return nil
            }
            skipSpace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
                if negated { throw TextQueryError(offset: position, "expected ':' after the column filter") }
                position = start
                return nil
            }
            position += 1
            names = [(name, at)]
        }
        var mapped: [String] = []
        for (name, at) in names {
            guard let c = column(name) else { throw TextQueryError(offset: at, "no searchable column `\(name)`") }
            mapped.append(c)
        }
        return (negated ? "- " : "") + "{" + mapped.joined(separator: " ") + "}"
    }

    /// `term [*] (+ term [*])*`, every term quoted; recorded as a phrase.
    mutating func parsePhrase(initial: Bool) throws(TextQueryError) -> String {
        var parts: [String] = []
        repeat {
            skipSpace()
            let at = position
            guard let term = try parseTerm() else { throw TextQueryError(offset: at, "expected a term") }
            var part = quotedTerm(term)
            skipSpace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "*") {
                position += 1
                part += " *"
            }
            parts.append(part)
            skipSpace()
        } while consume("+")
        let phrase = (initial ? "^ " : "") + parts.joined(separator: " + ")
        phrases.append(columns.last.map { $0 + " : " + phrase } ?? phrase)
        return phrase
    }

    /// A bareword or a quoted string; nil if neither starts here.
    mutating func parseTerm() throws(TextQueryError) -> String? {
        guard position < bytes.count else { return nil }
        if bytes[position] == UInt8(ascii: "\"") {
            let start = position
            position += 1
            var text: [UInt8] = []
            while true {
                guard position < bytes.count else { throw TextQueryError(offset: start, "unterminated quoted term") }
                if bytes[position] == UInt8(ascii: "\"") {
                    if position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "\"") {
                        text.append(UInt8(ascii: "\""))
                        position += 2
                        continue
                    }
                    position += 1
                    break
                }
                text.append(bytes[position])
                position += 1
            }
            return String(decoding: text, as: UTF8.self)
        }
        let at = position
        guard let word = bareword() else { return nil }
        if ["AND", "OR", "NOT"].contains(word) {
            position = at
            return nil
        }
        return word
    }

    // MARK: Lexing

    static func isBareword(_ byte: UInt8) -> Bool {
        byte >= 0x80 || byte == 0x1A || byte == UInt8(ascii: "_")
            || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    mutating func bareword() -> String? {
        let start = position
        while position < bytes.count, Self.isBareword(bytes[position]) { position += 1 }
        return position > start ? String(decoding: bytes[start..<position], as: UTF8.self) : nil
    }

    mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(bytes[position]) { position += 1 }
    }

    func nextNonSpace(after index: Int) -> UInt8? {
        var i = index
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(bytes[i]) { i += 1 }
        return i < bytes.count ? bytes[i] : nil
    }

    /// Whether `word` is next as a whole bareword.
    func peekKeyword(_ word: String) -> Bool {
        let w = Array(word.utf8)
        guard position + w.count <= bytes.count, Array(bytes[position..<position + w.count]) == w else { return false }
        return position + w.count == bytes.count || !Self.isBareword(bytes[position + w.count])
    }

    mutating func keyword(_ word: String) -> Bool {
        skipSpace()
        guard peekKeyword(word) else { return false }
        position += word.utf8.count
        return true
    }

    mutating func consume(_ symbol: Character) -> Bool {
        skipSpace()
        guard position < bytes.count, bytes[position] == symbol.asciiValue! else { return false }
        position += 1
        return true
    }

    /// Whether an item (implicitly ANDed) starts here.
    func startsItem() -> Bool {
        var i = position
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(bytes[i]) { i += 1 }
        guard i < bytes.count else { return false }
        let b = bytes[i]
        if b == UInt8(ascii: ")") || b == UInt8(ascii: ",") { return false }
        for word in ["AND", "OR", "NOT"] {
            let w = Array(word.utf8)
            if i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w,
                i + w.count == bytes.count || !Self.isBareword(bytes[i + w.count])
            {
                return false
            }
        }
        return b == UInt8(ascii: "\"") || b == UInt8(ascii: "(") || b == UInt8(ascii: "^") || b == UInt8(ascii: "-")
            || b == UInt8(ascii: "{") || Self.isBareword(b)
    }
}
