import Foundation
import Testing
import QueryPlanner
import HNSW
import TestSupport

@Suite struct ParserTests {
    /// A words query splits ASCII text by byte; it must split exactly where splitting by Character does
    /// (whitespace, CR LF as one, NUL), and non-ASCII text still splits by Character.
    @Test func wordsSplitByByteAsByCharacter() {
        var rng = SplitMix64(seed: 7)
        let alphabet: [UInt8] = Array(0..<128)
        func reference(_ text: String) -> [String] {
            text.split(whereSeparator: { $0.isWhitespace || $0.unicodeScalars.contains("\0") }).map(String.init)
        }
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...24, using: &rng)).map { _ in
                Bool.random(using: &rng)
                    ? alphabet.randomElement(using: &rng)!
                    : [32, 9, 10, 13, 0, 65, 66][Int.random(in: 0..<7, using: &rng)]
            }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(TextQuery.words(text) == reference(text), "\(bytes)")
        }
        for text in ["caf\u{E9}\u{2003}na\u{EF}ve", "a\u{3000}b\r\nc", "\u{85}x", "e\u{301} \u{301}y"] {
            #expect(TextQuery.words(text) == reference(text))
        }
        #expect(TextQuery.words("error  0x80070005\r\n\tdisk\u{0}net") == ["error", "0x80070005", "disk", "net"])
    }

    /// Found by fuzzing: a quote followed by a combining mark is one Character, and Character-wise doubling
    /// left it single, so the printed filter ended the name (or string) early and read back as another filter.
    @Test func quotesBeforeCombiningMarksSurvivePrintAndParse() throws {
        let name = "x\"\u{0740}ee\""
        let text = "it'\u{0301}s"
        let f = Filter.and([.compare(column: name, .greater, .real(-3)), .compare(column: "Rsc", .equal, .text(text))])
        let printed = f.description
        #expect(try Filter(parsing: printed) == f, "\(printed.debugDescription)")
        let fuzzed = try String(
            contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../Fuzz/Corpus/filter-text/crash-quote-before-combining-mark").path,
            encoding: .utf8)
        let parsed = try Filter(parsing: fuzzed)
        #expect(try Filter(parsing: parsed.description).normalized == parsed.normalized)
    }

    @Test func parsesTheFormatSyntax() throws {
        #expect(try Filter(parsing: "price < 10") == .compare(column: "price", .less, .integer(10)))
        #expect(
            try Filter(parsing: "tenant = 'acme' AND year >= 2020")
                == .and([
                    .compare(column: "tenant", .equal, .text("acme")),
                    .compare(column: "year", .greaterOrEqual, .integer(2020)),
                ]))
        #expect(try Filter(parsing: "a BETWEEN 1.5 AND 2e3") == .between(column: "a", .real(1.5), .real(2000)))
        #expect(try Filter(parsing: "tag IN ('news', 'tech')") == .isIn(column: "tag", [.text("news"), .text("tech")]))
        #expect(try Filter(parsing: "tag not in ('x')") == .not(.isIn(column: "tag", [.text("x")])))
        #expect(
            try Filter(parsing: "NOT (a = 1 OR b != -2)")
                == .not(
                    .or([.compare(column: "a", .equal, .integer(1)), .compare(column: "b", .notEqual, .integer(-2))])))
        #expect(
            try Filter(parsing: "x IS NULL or y is not null") == .or([.isNull(column: "x"), .isNotNull(column: "y")]))
        #expect(try Filter(parsing: "s = 'it''s'") == .compare(column: "s", .equal, .text("it's")))
        #expect(try Filter(parsing: "\"and\" = TRUE") == .compare(column: "and", .equal, .boolean(true)))
        #expect(
            try Filter(parsing: "a = 1 AND (b = 2 AND c = 3)")
                == .and([
                    .compare(column: "a", .equal, .integer(1)), .compare(column: "b", .equal, .integer(2)),
                    .compare(column: "c", .equal, .integer(3)),
                ]))
        // AND binds tighter than OR.
        #expect(
            try Filter(parsing: "a = 1 OR b = 2 AND c = 3")
                == .or([
                    .compare(column: "a", .equal, .integer(1)),
                    .and([.compare(column: "b", .equal, .integer(2)), .compare(column: "c", .equal, .integer(3))]),
                ]))
    }

    @Test(arguments: [
        ("price <", "expected a value after '<', found the end at offset 7"),
        ("price < 10 AND", "expected a column name, found the end at offset 14"),
        ("(a = 1", "expected ')' to close the '(' at offset 0, found the end at offset 6"),
        ("a = 'open", "unterminated string starting at offset 4"),
        ("a ~ 1", "unexpected character '~' at offset 2"),
        ("a = 1 b = 2", "expected AND, OR or the end after '1' at offset 6"),
        ("a IN (1, )", "expected a value after ',', found ')' at offset 9"),
        ("a BETWEEN 1 OR 2", "expected AND after the low bound of BETWEEN, found 'OR' at offset 12"),
        ("", "expected a filter, found nothing at offset 0"),
        ("AND = 1", "expected a column name, found 'AND' at offset 0"),
        ("a IS 3", "expected NULL after IS, found '3' at offset 5"),
    ])
    func errorsNameTheOffsetAndWhatWasExpected(text: String, message: String) {
        do {
            _ = try Filter(parsing: text)
            Issue.record("parsed \(text)")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func dslJSONAndTextGiveTheSameTree() throws {
        let dsl = Column("price") < 10 && Column("tag").in(["news", "tech"]) || !(Column("year").between(2000, 2010))
        let text = try Filter(parsing: "price < 10 AND tag IN ('news', 'tech') OR NOT (year BETWEEN 2000 AND 2010)")
        let json = try Filter(
            json: JSONSerialization.jsonObject(
                with: Data(
                    """
                    {"or": [{"and": [{"lt": ["price", 10]}, {"in": ["tag", ["news", "tech"]]}]},
                            {"not": {"between": ["year", 2000, 2010]}}]}
                    """.utf8)))
        #expect(dsl == text)
        #expect(json.normalized == text)
    }

    /// parse(print(f)) == f for random normalised trees (fixed seeds).
    @Test(arguments: 0..<5)
    func printingParsesBack(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) + 100)
        for _ in 0..<400 {
            let f = randomFilter(&rng, columns: testColumns, depth: 3) { _, rng in randomValue(&rng) }.normalized
            let printed = f.description
            let parsed = try Filter(parsing: printed)
            #expect(parsed == f, "\(printed)")
        }
    }

    @Test func validationNamesTheColumn() {
        let types: [String: FilterColumnType] = ["price": .real, "tag": .text, "flag": .boolean]
        func check(_ f: Filter) -> String? {
            do { try f.validate { types[$0] }; return nil } catch { return error.message }
        }
        #expect(check(Column("price") < 3 && Column("tag") == "x" && Column("flag") == true) == nil)
        #expect(check(Column("nope") == 1) == "unknown column 'nope'")
        #expect(check(Column("tag") < 3) == "column 'tag' is text; the value 3 does not compare with it")
        #expect(check(Column("price") == "x") == "column 'price' is real; the value 'x' does not compare with it")
        #expect(check(.compare(column: "price", .equal, .null))?.contains("IS NULL") == true)
    }

    @Test func sqlIsParameterised() throws {
        let f = try Filter(
            parsing: "tenant = 'x''); DROP TABLE t; --' AND price BETWEEN 1 AND 2 OR tag IN ('a', 'b') AND flag = TRUE")
        let sql = try f.sql(identifier: { ["tenant": "c0", "price": "c1", "tag": "c2", "flag": "c3"][$0] })
        #expect(
            sql.text == "(c0 = ? AND c1 BETWEEN ? AND ?) OR (c2 IN (?, ?) AND c3 = ?)"
                || sql.text == "((c0 = ?) AND (c1 BETWEEN ? AND ?)) OR ((c2 IN (?, ?)) AND (c3 = ?))")
        #expect(
            sql.arguments == [
                .text("x'); DROP TABLE t; --"), .integer(1), .integer(2), .text("a"), .text("b"), .integer(1),
            ])
        #expect(!sql.text.contains("DROP"))
    }
}

let testColumns = ["a", "b", "price", "tag", "select", "x_1"]

func randomValue(_ rng: inout SplitMix64) -> Value {
    switch Int.random(in: 0..<5, using: &rng) {
    case 0: return .integer(Int64.random(in: -1000...1000, using: &rng))
    case 1: return .real(Double(Int.random(in: -10000...10000, using: &rng)) / 64)
    case 2: return .text(["news", "it's", "", "tech", "a\"b"].randomElement(using: &rng)!)
    case 3: return .boolean(Bool.random(using: &rng))
    default: return .real(Double.random(in: -1e6...1e6, using: &rng))
    }
}
