// The search request's body, read directly: Foundation's `JSONDecoder` took ~50 µs for a 128-float vector given as
// a JSON array, a quarter of a search's CPU in the service (Benchmarks/README.md, "The example service under
// load"). Standard library only, so the fuzz target (Fuzz/) compiles it alone.

/// `POST /v1/collections/{c}/search`: a vector, a text, or both (hybrid).
struct SearchRequest: Decodable, Sendable, Equatable {
    var vector: [Float]?
    var vector_base64: String?
    var text: String?
    var k: Int?
    var filter: String?
    var returning: [String]?
    var explain: Bool?
    /// `rrf`, `rrf:K` or `weighted:W` (hybrid only).
    var fusion: String?
    var recall_target: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vector, vector_base64, text, k, filter, returning, explain, fusion, recall_target
    }
    /// The members a search body may have.
    static let members = Set(CodingKeys.allCases.map(\.rawValue))
}

extension SearchRequest {
    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, known: Self.members)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vector = try c.decodeIfPresent([Float].self, forKey: .vector)
        vector_base64 = try c.decodeIfPresent(String.self, forKey: .vector_base64)
        text = try c.decodeIfPresent(String.self, forKey: .text)
        k = try c.decodeIfPresent(Int.self, forKey: .k)
        filter = try c.decodeIfPresent(String.self, forKey: .filter)
        returning = try c.decodeIfPresent([String].self, forKey: .returning)
        explain = try c.decodeIfPresent(Bool.self, forKey: .explain)
        fusion = try c.decodeIfPresent(String.self, forKey: .fusion)
        recall_target = try c.decodeIfPresent(Double.self, forKey: .recall_target)
    }
}

/// A member name of a JSON object, whatever it is.
struct MemberName: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Throws where the object `decoder` is at has a member not in `known`. A request's unknown member is refused, not
/// skipped: a misspelt `filter` would otherwise run the search unfiltered, and a misspelt `values` would store a
/// row without its values, both without a word.
func refuseUnknownMembers(_ decoder: any Decoder, known: Set<String>) throws {
    let container = try decoder.container(keyedBy: MemberName.self)
    if let unknown = container.allKeys.filter({ !known.contains($0.stringValue) }).min(by: {
        $0.stringValue < $1.stringValue
    }) {
        throw DecodingError.dataCorruptedError(
            forKey: unknown, in: container, debugDescription: "unknown member `\(unknown.stringValue)`")
    }
}

/// Why a body is not a search request, and the byte offset where that was found.
struct SearchRequestError: Error, Equatable, CustomStringConvertible {
    var offset: Int
    var reason: String
    var description: String { "\(reason) at byte \(offset)" }
}

/// Reads a search request from its JSON body (RFC 8259): one object whose known members have the types
/// `SearchRequest` declares (each may be null); any other member is refused (`refuseUnknownMembers`). It accepts and
/// refuses what `JSONDecoder` does for that type: numbers by the JSON grammar (no NaN, no leading
/// zeros, no `+`), a `Float` or `Double` that overflows or underflows to zero refused, `k` an integral number,
/// strings valid UTF-8 with escapes (surrogate pairs joined, lone surrogates refused), a trailing comma allowed
/// (as `JSONDecoder` allows it), the first of duplicate members kept, nothing after the object. A duplicate's value
/// is skipped, and nesting deeper than 64 levels in it is refused (the stack stays small whatever the body).
struct SearchRequestReader {
    private let bytes: [UInt8]
    private var at = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    static func read(_ bytes: [UInt8]) throws(SearchRequestError) -> SearchRequest {
        var reader = SearchRequestReader(bytes: bytes)
        let request = try reader.object()
        reader.skipSpace()
        guard reader.at == bytes.count else { throw reader.fail("unexpected bytes after the object") }
        return request
    }

    private func fail(_ reason: String) -> SearchRequestError { SearchRequestError(offset: at, reason: reason) }

    private var current: UInt8? { at < bytes.count ? bytes[at] : nil }

    private mutating func skipSpace() {
        while let c = current, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { at += 1 }
    }

    private mutating func expect(_ c: UInt8, _ what: String) throws(SearchRequestError) {
        skipSpace()
        guard current == c else { throw fail("expected \(what)") }
        at += 1
    }

    /// Consumes `literal` (`null`, `true`, `false`) when it is next.
    private mutating func take(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard at + n <= bytes.count else { return false }
        let matches = literal.withUTF8Buffer { text in (0..<n).allSatisfy { bytes[at + $0] == text[$0] } }
        if matches { at += n }
        return matches
    }

    private mutating func object() throws(SearchRequestError) -> SearchRequest {
        skipSpace()
        var request = SearchRequest()
        var seen: Set<String> = []
        try members { (r, name) throws(SearchRequestError) in
            // A duplicate is skipped: the first is kept, as JSONDecoder keeps it.
            switch seen.insert(name).inserted ? name : "" {
            case "vector": request.vector = try r.nullable { (r) throws(SearchRequestError) in try r.floats() }
            case "vector_base64":
                request.vector_base64 = try r.nullable { (r) throws(SearchRequestError) in try r.text() }
            case "text": request.text = try r.nullable { (r) throws(SearchRequestError) in try r.text() }
            case "k": request.k = try r.nullable { (r) throws(SearchRequestError) in try r.integer() }
            case "filter": request.filter = try r.nullable { (r) throws(SearchRequestError) in try r.text() }
            case "returning": request.returning = try r.nullable { (r) throws(SearchRequestError) in try r.strings() }
            case "explain": request.explain = try r.nullable { (r) throws(SearchRequestError) in try r.boolean() }
            case "fusion": request.fusion = try r.nullable { (r) throws(SearchRequestError) in try r.text() }
            case "recall_target":
                request.recall_target = try r.nullable { (r) throws(SearchRequestError) in try r.double() }
            default:
                guard SearchRequest.members.contains(name) else { throw r.fail("unknown member `\(name)`") }
                try r.skipValue(depth: 1)  // a duplicate
            }
        }
        return request
    }

    /// `{ "name": value, … }` (a trailing comma allowed), calling `member` positioned at each value.
    private mutating func members(
        _ member: (inout SearchRequestReader, String) throws(SearchRequestError) -> Void
    ) throws(SearchRequestError) {
        guard current == UInt8(ascii: "{") else { throw fail("expected an object") }
        at += 1
        while true {
            skipSpace()
            if current == UInt8(ascii: "}") {
                at += 1
                return
            }
            guard current == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            let name = try string()
            try expect(UInt8(ascii: ":"), "`:`")
            skipSpace()
            try member(&self, name)
            skipSpace()
            switch current {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "}"): continue
            default: throw fail("expected `,` or `}`")
            }
        }
    }

    private mutating func nullable<T>(
        _ read: (inout SearchRequestReader) throws(SearchRequestError) -> T
    ) throws(SearchRequestError) -> T? {
        if take("null") { return nil }
        return try read(&self)
    }

    private mutating func boolean() throws(SearchRequestError) -> Bool {
        if take("true") { return true }
        if take("false") { return false }
        throw fail("expected a boolean")
    }

    private mutating func text() throws(SearchRequestError) -> String {
        guard current == UInt8(ascii: "\"") else { throw fail("expected a string") }
        return try string()
    }

    private mutating func floats() throws(SearchRequestError) -> [Float] {
        var values: [Float] = []
        try array { (r) throws(SearchRequestError) in
            let (start, end) = try r.number()
            guard let value = r.float(start, end), value.isFinite, value != 0 || r.isZero(start, end)
            else {
                throw SearchRequestError(offset: start, reason: "the number does not fit a Float")
            }
            values.append(value)
        }
        return values
    }

    private mutating func strings() throws(SearchRequestError) -> [String] {
        var values: [String] = []
        try array { (r) throws(SearchRequestError) in values.append(try r.text()) }
        return values
    }

    private mutating func double() throws(SearchRequestError) -> Double {
        let (start, end) = try number()
        guard let value = parsed(Double.self, start, end), value.isFinite, value != 0 || isZero(start, end) else {
            throw SearchRequestError(offset: start, reason: "the number does not fit a Double")
        }
        return value
    }

    private mutating func integer() throws(SearchRequestError) -> Int {
        let (start, end) = try number()
        if let exact = parsed(Int.self, start, end) { return exact }
        // `1e3`, `10.0`: integral values written otherwise, as long as a Double holds them exactly.
        guard let value = parsed(Double.self, start, end), value.rounded() == value, abs(value) < 0x1p53 else {
            throw SearchRequestError(offset: start, reason: "expected an integer")
        }
        return Int(value)
    }

    /// `[ item (, item)* ]` or `[]`, calling `item` positioned at each element.
    private mutating func array(
        _ item: (inout SearchRequestReader) throws(SearchRequestError) -> Void
    ) throws(SearchRequestError) {
        guard current == UInt8(ascii: "[") else { throw fail("expected an array") }
        at += 1
        while true {
            skipSpace()
            if current == UInt8(ascii: "]") {
                at += 1
                return
            }
            try item(&self)
            skipSpace()
            switch current {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "]"): continue
            default: throw fail("expected `,` or `]`")
            }
        }
    }

    /// The bounds of a number by the JSON grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    private mutating func number() throws(SearchRequestError) -> (Int, Int) {
        let start = at
        func digits(_ r: inout SearchRequestReader) -> Int {
            let first = r.at
            while let c = r.current, c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { r.at += 1 }
            return r.at - first
        }
        if current == UInt8(ascii: "-") { at += 1 }
        if current == UInt8(ascii: "0") {
            at += 1
        } else if digits(&self) == 0 {
            throw SearchRequestError(offset: start, reason: "expected a number")
        }
        if current == UInt8(ascii: ".") {
            at += 1
            guard digits(&self) > 0 else { throw fail("expected digits after `.`") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            at += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw fail("expected digits in the exponent") }
        }
        return (start, at)
    }

    /// Whether a number's digits before its exponent are all zeros (so a zero value is not an underflow).
    private func isZero(_ start: Int, _ end: Int) -> Bool {
        for c in bytes[start..<end] {
            if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { break }
            if c >= UInt8(ascii: "1") && c <= UInt8(ascii: "9") { return false }
        }
        return true
    }

    /// A Float from a number checked by `number()`, correctly rounded like the standard library's: the common
    /// case in Clinger's fast path (a vector's 128 numbers through `Float(String)`, i.e. `strtof`, cost ~10 µs of a
    /// request), the rest by the standard library.
    func float(_ start: Int, _ end: Int) -> Float? {
        fastFloat(start, end) ?? parsed(Float.self, start, end)
    }

    /// At most 19 significant digits and a small decimal exponent: the digits are an exact integer m and 10^e an
    /// exact power, so m × 10^e (or m ÷ 10^−e) rounded once is the correctly rounded value. In Float when m < 2^24
    /// and |e| ≤ 10; else in Double when m < 2^53 and |e| ≤ 22, then to Float, which rounds twice: that differs
    /// from rounding once only when the Double lands exactly halfway between two Floats, and those go to the
    /// standard library. nil: not in the fast path.
    func fastFloat(_ start: Int, _ end: Int) -> Float? {
        var i = start
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var mantissa: UInt64 = 0
        var significant = 0
        var scale = 0
        var fraction = false
        while i < end {
            let c = bytes[i]
            if c == UInt8(ascii: ".") {
                fraction = true
            } else if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                if mantissa != 0 || c != UInt8(ascii: "0") { significant += 1 }
                guard significant <= 19 else { return nil }
                mantissa = mantissa * 10 + UInt64(c - UInt8(ascii: "0"))
                if fraction { scale -= 1 }
            } else {
                break  // the exponent
            }
            i += 1
        }
        if i < end {
            i += 1  // `e` or `E`
            var exponentNegative = false
            if bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                exponentNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            guard end - i <= 4 else { return nil }
            var exponent = 0
            while i < end {
                exponent = exponent * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                i += 1
            }
            scale += exponentNegative ? -exponent : exponent
        }
        var value: Float
        if mantissa == 0 {
            value = 0
        } else if mantissa < 1 << 24, abs(scale) <= 10 {
            let power = Self.floatPowers[abs(scale)]
            value = scale < 0 ? Float(mantissa) / power : Float(mantissa) * power
        } else if mantissa < 1 << 53, abs(scale) <= 22 {
            let power = Self.doublePowers[abs(scale)]
            let exact = scale < 0 ? Double(mantissa) / power : Double(mantissa) * power
            value = Float(exact)
            if Double(value) != exact {
                let neighbour = exact > Double(value) ? value.nextUp : value.nextDown
                if (Double(value) + Double(neighbour)) / 2 == exact { return nil }
            }
        } else {
            return nil
        }
        return negative ? -value : value
    }

    /// 10^0 … 10^10, each exact in a Float (5^10 < 2^24); 10^0 … 10^22, each exact in a Double (5^22 < 2^53).
    static let floatPowers: [Float] = (0...10).map { Float(Self.doublePowers[$0]) }
    static let doublePowers: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
        1e19, 1e20, 1e21, 1e22,
    ]

    /// A number already checked by `number()`, converted by the standard library.
    private func parsed<T: LosslessStringConvertible>(_ type: T.Type, _ start: Int, _ end: Int) -> T? {
        // ASCII digits and signs: always valid UTF-8.
        T(String(decoding: bytes[start..<end], as: UTF8.self))
    }

    /// A string starting at the opening quote: escapes decoded, UTF-8 checked, no raw control characters.
    private mutating func string() throws(SearchRequestError) -> String {
        at += 1
        let start = at
        // The common case: no escapes, one UTF-8 check of the whole run.
        while let c = current, c != UInt8(ascii: "\""), c != UInt8(ascii: "\\") {
            guard c >= 0x20 else { throw fail("a control character in a string") }
            at += 1
        }
        guard let c = current else { throw fail("an unterminated string") }
        var utf8 = Array(bytes[start..<at])
        if c == UInt8(ascii: "\\") {
            while true {
                guard let c = current else { throw fail("an unterminated string") }
                if c == UInt8(ascii: "\"") { break }
                guard c >= 0x20 else { throw fail("a control character in a string") }
                at += 1
                guard c == UInt8(ascii: "\\") else {
                    utf8.append(c)
                    continue
                }
                guard let e = current else { throw fail("an unterminated string") }
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(e)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard take("\\u") else { throw fail("a lone high surrogate") }
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("a high surrogate without its low") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail("a lone low surrogate")
                    }
                    utf8.append(contentsOf: Unicode.UTF8.encode(Unicode.Scalar(scalar)!)!)
                default: throw fail("an unknown escape")
                }
            }
        }
        at += 1  // the closing quote
        guard let text = String(validating: utf8, as: UTF8.self) else {
            throw SearchRequestError(offset: start, reason: "a string that is not valid UTF-8")
        }
        return text
    }

    private mutating func hex4() throws(SearchRequestError) -> UInt32 {
        guard at + 4 <= bytes.count else { throw fail("a short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[at]
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: throw fail("a bad hex digit in a \\u escape")
            }
            value = value << 4 | UInt32(digit)
            at += 1
        }
        return value
    }

    /// Skips any JSON value (an unknown member's), checking it as strictly as a known one.
    private mutating func skipValue(depth: Int) throws(SearchRequestError) {
        guard depth <= 64 else { throw fail("nesting deeper than 64 levels") }
        skipSpace()
        switch current {
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "["):
            try array { (r) throws(SearchRequestError) in try r.skipValue(depth: depth + 1) }
        case UInt8(ascii: "{"):
            try members { (r, _) throws(SearchRequestError) in try r.skipValue(depth: depth + 1) }
        default:
            if take("null") || take("true") || take("false") { return }
            _ = try number()
        }
    }
}
