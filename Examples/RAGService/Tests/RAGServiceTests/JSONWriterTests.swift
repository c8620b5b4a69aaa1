import Foundation
@testable import RAGServiceCore
import Testing

/// The service writes search responses itself (for speed): what it writes must parse, as JSON, to what
/// Foundation's JSONEncoder makes of the same response.
struct JSONWriterTests {
    static func parsed(_ data: Data) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: data) as? NSDictionary)
    }

    @Test func responsesDecodeAsJSONEncodersDo() throws {
        let awkward = [
            "", "plain", "quote \" and backslash \\", "new\nline\ttab\rreturn", "\u{01}\u{1F}\u{7F}", "naïve 東京 🚀",
            "\u{2028}", "</script>",
        ]
        var rng = SystemRandomNumberGenerator()
        for round in 0..<200 {
            var hits: [SearchResponse.Hit] = []
            for i in 0..<Int.random(in: 0...12, using: &rng) {
                let id: JSONRowID =
                    i % 2 == 0
                    ? .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
                    : .string(awkward.randomElement(using: &rng)! + "\(i)")
                var values: [String: JSONValue] = [:]
                for name in awkward.shuffled(using: &rng).prefix(Int.random(in: 0...3, using: &rng)) {
                    values[name] = [
                        .null, .bool(round % 2 == 0), .integer(.random(in: -1_000_000...1_000_000, using: &rng)),
                        .number(Double.random(in: -1e300...1e300, using: &rng)), .number(1e-320), .number(0.1),
                        .string(awkward.randomElement(using: &rng)!),
                    ].randomElement(using: &rng)!
                }
                hits.append(
                    .init(
                        id: id,
                        distance: [nil, Float.random(in: 0...4, using: &rng), 1e-40, .greatestFiniteMagnitude]
                            .randomElement(using: &rng)!,
                        score: round % 3 == 0 ? Double.random(in: 0...1, using: &rng) : nil, values: values))
            }
            let response = SearchResponse(
                hits: hits, explain: round % 5 == 0 ? awkward.randomElement(using: &rng) : nil)
            var bytes: [UInt8] = []
            response.writeJSON(into: &bytes)
            let ours = try Self.parsed(Data(bytes))
            let foundation = try Self.parsed(JSONEncoder().encode(response))
            #expect(ours == foundation, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test func numbersJSONCannotHoldAreNull() throws {
        var bytes: [UInt8] = []
        SearchResponse(
            hits: [.init(id: .int(1), distance: .nan, score: .infinity, values: ["x": .number(-.infinity)])],
            explain: nil
        )
        .writeJSON(into: &bytes)
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == #"{"hits":[{"id":1,"distance":null,"score":null,"values":{"x":null}}]}"#)
    }
}
