import Foundation
import HybridStore

/// JSON for values, rows and hits, in a stable key order.
enum Render {
    static func json(_ value: Value) -> Any {
        switch value {
        case .integer(let v): return v
        case .real(let v): return v
        case .text(let v): return v
        case .boolean(let v): return v
        case .blob(let v): return Data(v).base64EncodedString()
        case .null: return NSNull()
        }
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
    static func line(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func pretty(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// A left-aligned text table with a header row.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func format(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }
                .joined(separator: "  ")
        }
        return ([format(header), format(widths.map { String(repeating: "-", count: $0) })] + rows.map(format)).joined(separator: "\n")
    }

    /// RFC 4180 CSV: quotes fields with commas, quotes or newlines.
    static func csv(_ cells: [String]) -> String {
        cells.map { c in
            c.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + c.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : c
        }.joined(separator: ",")
    }

    /// Rows of (id, distance?, values) in a format.
    static func rows(_ items: [(id: RowID, distance: Float?, values: [String: Value], vector: [Float]?)], columns: [String],
                     format: OutputFormat) -> String {
        let showDistance = items.contains { $0.distance != nil }
        func object(_ item: (id: RowID, distance: Float?, values: [String: Value], vector: [Float]?)) -> [String: Any] {
            var o: [String: Any] = ["id": json(item.id)]
            if let d = item.distance { o["distance"] = Double(d) }
            for c in columns { o[c] = json(item.values[c] ?? .null) }
            if let v = item.vector { o["vector"] = v.map(Double.init) }
            return o
        }
        switch format {
        case .json: return pretty(items.map(object))
        case .jsonl: return items.map { line(object($0)) }.joined(separator: "\n")
        case .csv:
            let header = ["id"] + (showDistance ? ["distance"] : []) + columns
            return ([csv(header)] + items.map { item in
                csv([item.id.description] + (showDistance ? [item.distance.map { String($0) } ?? ""] : [])
                    + columns.map { text(item.values[$0] ?? .null) })
            }).joined(separator: "\n")
        case .table:
            let header = ["id"] + (showDistance ? ["distance"] : []) + columns
            return table(header, items.map { item in
                [item.id.description] + (showDistance ? [item.distance.map { String(format: "%.4f", $0) } ?? ""] : [])
                    + columns.map { text(item.values[$0] ?? .null) }
            })
        }
    }
}
