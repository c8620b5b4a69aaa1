/// A value the service writes as JSON itself. Foundation's `JSONEncoder` took ~30 µs for a response of ten hits
/// (13 % of the service's CPU under load); writing the bytes directly takes a fraction of that. The output
/// must decode to what `JSONEncoder` makes of the same value (tested).
protocol JSONWritable {
    func writeJSON(into out: inout [UInt8])
}

enum JSONWriter {
    static func string(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            default: out.append(byte)  // UTF-8 passes through: JSON text is UTF-8
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// A number, or null for NaN and infinities (which JSON cannot hold).
    static func number(_ x: Double, into out: inout [UInt8]) {
        guard x.isFinite else { return out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: "\(x)".utf8)  // the shortest text that reads back as x
    }

    static func number(_ x: Float, into out: inout [UInt8]) {
        guard x.isFinite else { return out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: "\(x)".utf8)
    }

    static func key(_ name: String, into out: inout [UInt8]) {
        string(name, into: &out)
        out.append(UInt8(ascii: ":"))
    }
}

extension JSONValue: JSONWritable {
    func writeJSON(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .integer(let i): out.append(contentsOf: String(i).utf8)
        case .number(let d): JSONWriter.number(d, into: &out)
        case .string(let s): JSONWriter.string(s, into: &out)
        }
    }
}

extension SearchResponse: JSONWritable {
    func writeJSON(into out: inout [UInt8]) {
        out.append(contentsOf: #"{"hits":["#.utf8)
        for (i, hit) in hits.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "{"))
            JSONWriter.key("id", into: &out)
            switch hit.id {
            case .int(let n): out.append(contentsOf: String(n).utf8)
            case .string(let s): JSONWriter.string(s, into: &out)
            }
            if let distance = hit.distance {
                out.append(UInt8(ascii: ","))
                JSONWriter.key("distance", into: &out)
                JSONWriter.number(distance, into: &out)
            }
            if let score = hit.score {
                out.append(UInt8(ascii: ","))
                JSONWriter.key("score", into: &out)
                JSONWriter.number(score, into: &out)
            }
            out.append(UInt8(ascii: ","))
            JSONWriter.key("values", into: &out)
            out.append(UInt8(ascii: "{"))
            for (j, (name, value)) in hit.values.enumerated() {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.key(name, into: &out)
                value.writeJSON(into: &out)
            }
            out.append(contentsOf: "}}".utf8)
        }
        out.append(UInt8(ascii: "]"))
        if let explain {
            out.append(UInt8(ascii: ","))
            JSONWriter.key("explain", into: &out)
            JSONWriter.string(explain, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}
