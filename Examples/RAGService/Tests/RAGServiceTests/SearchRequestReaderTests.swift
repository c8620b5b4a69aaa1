import Foundation
@testable import RAGServiceCore
import Testing

/// The service reads search bodies itself (for speed): it must accept what `JSONDecoder` accepts for
/// `SearchRequest`, with the same values, and refuse what it refuses.
struct SearchRequestReaderTests {
    static func foundation(_ text: String) -> SearchRequest? {
        try? JSONDecoder().decode(SearchRequest.self, from: Data(text.utf8))
    }

    static func ours(_ text: String) -> SearchRequest? { try? SearchRequestReader.read(Array(text.utf8)) }

    @Test func acceptsWhatJSONDecoderAcceptsWithTheSameValues() throws {
        let bodies = [
            #"{}"#,
            #" { "vector" : [ 0.5 , -1.25e-3, 3E+2, 0, -0, 0.0e-7, 1e-40 ] , "k" : 7 } "#,
            #"{"vector":[],"k":null,"filter":null,"returning":null,"explain":null}"#,
            #"{"vector_base64":"AAAAPwAAgD8=","k":1e1,"explain":true,"recall_target":0.9}"#,
            #"{"text":"naïve \"quoted\" \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude80 東京","fusion":"rrf:60"}"#,
            #"{"filter":"year >= 2020 AND tenant = 'acme'","returning":["year","body",""],"explain":false}"#,
            #"{"unknown":{"nested":[1,{"a":[true,false,null,"x"]}],"more":-0.0},"k":3,"other":[]}"#,
            #"{"k":1,"k":2}"#,
            "{\"vector\":[1,2,3],\n\t\"k\":10.0}\r\n",
            #"{"recall_target":1e-300,"vector":[3.4028234e38]}"#,
            #"{"k":1,}"#, #"{"vector":[1,],"returning":["a",],"other":{"x":[1,],},}"#,
        ]
        for body in bodies {
            let expected = try #require(Self.foundation(body), "JSONDecoder refuses \(body)")
            #expect(Self.ours(body) == expected, "\(body)")
        }
        // Random vectors: every float printed as Swift prints it, and with a few digits, read back equal.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let v = (0..<Int.random(in: 0...384, using: &rng)).map { _ in Float.random(in: -100...100, using: &rng) }
            let body = "{\"k\":10,\"vector\":[\(v.map { "\($0)" }.joined(separator: ","))]}"
            #expect(Self.ours(body)?.vector == v)
            let short = "{\"vector\":[\(v.map { String(format: "%.4g", $0) }.joined(separator: ", "))]}"
            #expect(Self.ours(short) == Self.foundation(short))
        }
    }

    @Test func refusesWhatJSONDecoderRefuses() throws {
        let bodies = [
            "", " ", "[]", "null", "{", #"{"k":1 "x":2}"#, #"{,}"#, #"{"k":1,,}"#, #"{"vector":[,]}"#, #"{"k":01}"#,
            #"{"k":+1}"#, #"{"k":1.5}"#,
            #"{"k":"1"}"#, #"{"vector":[1e-50]}"#, #"{"recall_target":1e-400}"#, #"{"vector":[NaN]}"#,
            #"{"vector":[1e39]}"#, #"{"vector":[.5]}"#,
            #"{"vector":[1.]}"#, #"{"vector":[1e]}"#, #"{"vector":["1"]}"#, #"{"vector":1}"#, #"{"explain":1}"#,
            #"{"text":"\ud83d"}"#, #"{"text":"\ude80"}"#, #"{"text":"\x"}"#, #"{"text":"\u12"}"#,
            "{\"text\":\"a\u{1}\"}",
            #"{"text":"open}"#, #"{"k":1}x"#, #"{"k":1}{}"#, #"{k:1}"#, #"{"k":tru}"#, #"{"a":[1 2]}"#,
            #"{"returning":[1]}"#, #"{"recall_target":1e400}"#,
        ]
        for body in bodies {
            #expect(Self.foundation(body) == nil, "JSONDecoder accepts \(body)")
            #expect(Self.ours(body) == nil, "\(body)")
        }
        // Deep nesting in a skipped member: refused past 64 levels (JSONDecoder allows 512), so the reader's stack stays
        // small whatever the body.
        #expect(Self.ours(String(repeating: #"{"a":["#, count: 40) + String(repeating: "]}", count: 40)) == nil)
        #expect(
            Self.ours(String(repeating: #"{"a":["#, count: 20) + String(repeating: "]}", count: 20)) == SearchRequest())
        // Invalid UTF-8 inside a string.
        let bad: [UInt8] = Array(#"{"text":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect((try? SearchRequestReader.read(bad)) == nil)
        #expect((try? JSONDecoder().decode(SearchRequest.self, from: Data(bad))) == nil)
        // The error says where.
        do {
            _ = try SearchRequestReader.read(Array(#"{"k": 1, "vector": [1, x]}"#.utf8))
            Issue.record("expected an error")
        } catch {
            #expect(error.offset == 23)
        }
    }
}
