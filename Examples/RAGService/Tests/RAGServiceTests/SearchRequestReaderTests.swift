import Foundation
@testable import RAGServiceCore
import Testing

/// The service reads search bodies itself (for speed): it must accept what `JSONDecoder` accepts for
/// `SearchRequest`, with the same values, and refuse what it refuses.
struct SearchRequestReaderTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

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
            #"{"k":3,"k":{"nested":[1,{"a":[true,false,null,"x"]}],"more":-0.0},"filter":"x","filter":[]}"#,
            #"{"k":1,"k":2}"#,
            "{\"vector\":[1,2,3],\n\t\"k\":10.0}\r\n",
            #"{"recall_target":1e-300,"vector":[3.4028234e38]}"#,
            #"{"k":1,}"#, #"{"vector":[1,],"returning":["a",],"returning":{"x":[1,],},}"#,
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

    /// Vector numbers are read in Clinger's fast path where it is exact: every value equals `Float(String)`
    /// (correctly rounded), including Doubles that land halfway between two Floats, and the common forms take
    /// the fast path at all.
    @Test func theFastFloatPathRoundsAsTheStandardLibrary() throws {
        func both(_ text: String) -> (fast: Float?, float: Float?, library: Float?) {
            let reader = SearchRequestReader(bytes: Array(text.utf8))
            return (reader.fastFloat(0, text.utf8.count), reader.float(0, text.utf8.count), Float(text))
        }
        for text in [
            "16777217", "16777219", "-16777217", "33554435", "0.1", "-0.0", "3.4028234e38", "1e-45",
            "123456789012345678",
            "9007199254740993", "0.30000001192092896", "1.00000005960464478", "7e22", "1e23", "0.000000000000000000001",
        ] {
            let (_, float, library) = both(text)
            #expect(float == library && float?.sign == library?.sign, "\(text)")
        }
        #expect(both("16777217").fast == nil)  // exactly halfway between 2^24 and 2^24 + 2: left to strtof
        var rng = SplitMix(seed: 42)
        var fast = 0
        for i in 0..<100_000 {
            let text: String
            switch i % 3 {
            case 0: text = "\(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))"
            case 1:
                text = String(format: "%.*g", Int(rng.next() % 12) + 1, Double(Float.random(in: -10...10, using: &rng)))
            default:
                let digits = String(rng.next() % 10_000_000_000_000_000_000)
                text = (rng.next() % 2 == 0 ? "-" : "") + digits + "e" + String(Int(rng.next() % 60) - 40)
            }
            guard text.allSatisfy({ $0.isNumber || "-+.eE".contains($0) }) else { continue }  // nan, inf
            let (f, float, library) = both(text)
            if f != nil { fast += 1 }
            #expect(float == library, "\(text)")
            if float != library { break }
        }
        #expect(fast > 50_000)
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
            // A member it does not know (a misspelt one would otherwise be dropped without a word).
            #"{"vector":[1],"filtr":"year > 1"}"#, #"{"other":[]}"#, #"{"K":3}"#,
        ]
        for body in bodies {
            #expect(Self.foundation(body) == nil, "JSONDecoder accepts \(body)")
            #expect(Self.ours(body) == nil, "\(body)")
        }
        // Deep nesting in a skipped member (a duplicate's value): refused past 64 levels (JSONDecoder allows 512), so
        // the reader's stack stays small whatever the body.
        func duplicate(nesting n: Int) -> String {
            #"{"k":1,"k":"# + String(repeating: #"{"a":["#, count: n) + String(repeating: "]}", count: n) + "}"
        }
        #expect(Self.ours(duplicate(nesting: 40)) == nil)
        #expect(Self.ours(duplicate(nesting: 20)) == SearchRequest(k: 1))
        #expect(Self.foundation(duplicate(nesting: 20)) == SearchRequest(k: 1))
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
        do {
            _ = try SearchRequestReader.read(Array(#"{"k": 1, "filtr": "year > 1"}"#.utf8))
            Issue.record("expected an error")
        } catch {
            #expect(error.reason == "unknown member `filtr`")
        }
    }
}
