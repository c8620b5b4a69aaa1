import Foundation
import Testing
import QueryPlanner

struct Rows: ColumnSource {
    var byName: [String: [Value]]
    func values(of column: String) -> [Value]? { byName[column] }
}

@Suite struct FilterJSONTests {
    static let rows = Rows(byName: [
        "price": [.real(5), .real(50), .real(99.5), .null, .integer(10)],
        "tag": [.text("news"), .text("tech"), .text("news"), .text("art"), .null],
        "tenant": [.integer(1), .integer(2), .integer(1), .integer(3), .integer(2)],
    ])

    static func parse(_ json: String) throws -> Filter {
        try Filter(json: JSONSerialization.jsonObject(with: Data(json.utf8)))
    }

    static func matching(_ json: String) throws -> [Int] {
        let p = try parse(json).predicate(over: rows)
        return (0..<5).filter(p)
    }

    @Test func readsEveryOperatorOfTheFormat() throws {
        #expect(try Self.parse(#"{"lt": ["price", 10.5]}"#) == .compare(column: "price", .less, .real(10.5)))
        #expect(try Self.parse(#"{"eq": ["tenant", 2]}"#) == .compare(column: "tenant", .equal, .integer(2)))
        #expect(try Self.parse(#"{"in": ["tag", ["a", "b"]]}"#) == .isIn(column: "tag", [.text("a"), .text("b")]))
        #expect(try Self.parse(#"{"between": ["price", 1, 2]}"#) == .between(column: "price", .integer(1), .integer(2)))
        #expect(
            try Self.parse(#"{"not": {"ne": ["tag", "x"]}}"#) == .not(.compare(column: "tag", .notEqual, .text("x"))))
        #expect(try Self.parse(#"{"eq": ["flag", true]}"#) == .compare(column: "flag", .equal, .boolean(true)))
    }

    @Test func evaluatesWithSQLNullSemantics() throws {
        #expect(try Self.matching(#"{"lt": ["price", 60]}"#) == [0, 1, 4])
        #expect(try Self.matching(#"{"gte": ["price", 50]}"#) == [1, 2])
        // NULL price is neither < 60 nor NOT < 60.
        #expect(try Self.matching(#"{"not": {"lt": ["price", 60]}}"#) == [2])
        #expect(try Self.matching(#"{"or": [{"eq": ["tag", "art"]}, {"eq": ["tenant", 2]}]}"#) == [1, 3, 4])
        #expect(try Self.matching(#"{"and": [{"eq": ["tag", "news"]}, {"eq": ["tenant", 1]}]}"#) == [0, 2])
        #expect(try Self.matching(#"{"in": ["tenant", [2, 3]]}"#) == [1, 3, 4])
        #expect(try Self.matching(#"{"between": ["price", 10, 50]}"#) == [1, 4])
        #expect(try Self.matching(#"{"ne": ["tag", "news"]}"#) == [1, 3])
        // Integers and reals compare as numbers.
        #expect(try Self.matching(#"{"eq": ["price", 10]}"#) == [4])
    }

    @Test func rejectsMalformedTrees() throws {
        for bad in [
            #"{"lt": ["price"]}"#, #"{"xx": ["price", 1]}"#, #"{"and": []}"#, #"{"in": ["tag", 3]}"#,
            #"{"lt": ["price", 1], "gt": ["price", 0]}"#, #"{"eq": ["tag", [1]]}"#,
        ] {
            #expect(throws: FilterError.self, "\(bad)") { try Self.parse(bad) }
        }
        #expect(throws: FilterError.self) { try Self.parse(#"{"eq": ["nope", 1]}"#).predicate(over: Self.rows) }
    }
}
