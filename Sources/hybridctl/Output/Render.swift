import Foundation
import HybridStore

/// JSON for values, rows and hits, in a stable key order.
enum Render {
    static func json(_ value: Value) -> Any {
        switch value {
        case .integer(let v): return v
        case .real(let v): return number(v)
        case .text(let v): return v
        case .boolean(let v): return v
        case .blob(let v): return Data(v).base64EncodedString()
        case .null: return NSNull()
        }
    }

    /// A JSON number, or for a value JSON cannot hold (an infinity, NaN) the string "inf", "-inf" or "nan":
    /// every output format can print any distance or value the engine returns.
    static func number(_ v: Double) -> Any { v.isFinite ? v : (v.isNaN ? "nan" : (v < 0 ? "-inf" : "inf")) }

    /// A JSON array of floats, each as the shortest decimal that reads back as the same Float (0.9, not
    /// 0.8999999761581421; -0.0 keeps its sign, which JSONSerialization would print as -0 and read back as 0).
    static func floats(_ v: [Float]) -> String {
        "[" + v.map { $0.isFinite ? $0.description : "null" }.joined(separator: ",") + "]"
    }

    /// `line(object)` with a float array (written by `floats`) added last under `key`. Spliced as text after
    /// the sorted keys, so no value of `object`, whatever it holds, can be mistaken for the array.
    static func line(_ object: [String: Any], floats key: String, _ vector: [Float]) -> String {
        var object = object
        object[key] = nil
        let head = line(object)
        let name = encode(key, [.fragmentsAllowed])
        return head.dropLast() + (object.isEmpty ? "" : ",") + name + ":" + floats(vector) + "}"
    }

    static func json(_ id: RowID) -> Any {
        switch id {
        case .int(let v): return v
        case .string(let s): return s
        }
    }

    static func text(_ value: Value) -> String {
        switch value {
        case .text(let s): return s
        case .null: return ""
        case .real(let v): return String(v)
        case .blob(let v): return Data(v).base64EncodedString()
        default: return value.description
        }
    }

    /// One JSON object per line, keys sorted.
    static func line(_ object: [String: Any]) -> String { encode(object, [.sortedKeys, .withoutEscapingSlashes]) }

    static func pretty(_ object: Any) -> String {
        encode(object, [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }

    /// Every value given here is a JSON value (`number` keeps non-finite numbers out), so this cannot fail;
    /// if it ever did, the program stops with an error rather than print an empty line and exit 0.
    private static func encode(_ object: Any, _ options: JSONSerialization.WritingOptions) -> String {
        do {
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: options), as: UTF8.self)
        } catch {
            fail("cannot encode the output as JSON: \(error.localizedDescription)")
        }
    }

    /// A left-aligned text table with a header row.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func format(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count)
            }
            .joined(separator: "  ")
        }
        return ([format(header), format(widths.map { String(repeating: "-", count: $0) })] + rows.map(format)).joined(
            separator: "\n")
    }

    /// RFC 4180 CSV: quotes fields with commas, quotes or newlines.
    static func csv(_ cells: [String]) -> String {
        cells.map { c in
            containsAny(c, of: [",", "\"", "\n", "\r"]) ? quoted(c, with: "\"") : c
        }.joined(separator: ",")
    }

    /// Rows of (id, distance?, values) in a format.
    static func rows(
        _ items: [(id: RowID, distance: Float?, values: [String: Value], vector: [Float]?)], columns: [String],
        format: OutputFormat
    ) -> String {
        let showDistance = items.contains { $0.distance != nil }
        func object(_ item: (id: RowID, distance: Float?, values: [String: Value], vector: [Float]?)) -> [String: Any] {
            var o: [String: Any] = ["id": json(item.id)]
            if let d = item.distance { o["distance"] = number(Double(d)) }
            for c in columns { o[c] = json(item.values[c] ?? .null) }
            if let v = item.vector { o["vector"] = v.map { number(Double($0)) } }
            return o
        }
        switch format {
        case .json: return pretty(items.map(object))
        case .jsonl:
            return items.map { item in
                item.vector.map { line(object(item), floats: "vector", $0) } ?? line(object(item))
            }.joined(separator: "\n")
        case .csv:
            let header = ["id"] + (showDistance ? ["distance"] : []) + columns
            return
                ([csv(header)]
                + items.map { item in
                    csv(
                        [item.id.description] + (showDistance ? [item.distance.map { String($0) } ?? ""] : [])
                            + columns.map { text(item.values[$0] ?? .null) })
                }).joined(separator: "\n")
        case .table:
            let header = ["id"] + (showDistance ? ["distance"] : []) + columns
            return table(
                header,
                items.map { item in
                    [item.id.description]
                        + (showDistance ? [item.distance.map { String(format: "%.4f", $0) } ?? ""] : [])
                        + columns.map { text(item.values[$0] ?? .null) }
                })
        }
    }
}
