import Foundation
import HybridStore

/// One row to import, with the line (or record) it came from.
struct ImportRow {
    var line: Int
    var id: RowID
    var vector: [Float]
    var values: [String: Value]
}

/// A bad line: where and why.
struct LineError: Error {
    var line: Int
    var reason: String
}

/// Turns input values into typed column values per the schema.
struct RowBuilder {
    let schema: Schema
    let idField: String
    let vectorField: String
    let ignoreExtra: Bool

    func id(_ raw: Any?, line: Int, fallback: Int? = nil) throws -> RowID {
        switch (schema.id, raw) {
        case (.integer, let n as NSNumber) where !isJSONBool(n): return .int(n.int64Value)
        case (.integer, let s as String): if let v = Int64(s) { return .int(v) }
        case (.string, let s as String): return .string(s)
        case (.string, let n as NSNumber): return .string(n.stringValue)
        case (_, nil): if let fallback { return schema.id == .integer ? .int(Int64(fallback)) : .string(String(fallback)) }
        default: break
        }
        throw LineError(line: line, reason: raw == nil ? "no `\(idField)` field" : "`\(idField)` is not a valid \(schema.id.rawValue) id")
    }

    func value(_ raw: Any, column: ColumnSpec, line: Int) throws -> Value {
        if raw is NSNull { return .null }
        let number = raw as? NSNumber
        let isBool = number.map(isJSONBool) ?? false
        switch column.type {
        case .integer:
            if let n = number, !isBool, n.doubleValue == n.doubleValue.rounded() { return .integer(n.int64Value) }
            if let s = raw as? String, let v = Int64(s) { return .integer(v) }
        case .real:
            if let n = number, !isBool { return .real(n.doubleValue) }
            if let s = raw as? String, let v = Double(s) { return .real(v) }
        case .text:
            if let s = raw as? String { return .text(s) }
        case .boolean:
            if let n = number, isBool { return .boolean(n.boolValue) }
            if let s = raw as? String, ["true", "false", "1", "0"].contains(s.lowercased()) {
                return .boolean(s.lowercased() == "true" || s == "1")
            }
        case .blob:
            if let s = raw as? String, let d = Data(base64Encoded: s) { return .blob([UInt8](d)) }
        }
        throw LineError(line: line, reason: "column `\(column.name)` expects \(column.type.rawValue), got \(raw)")
    }

    /// Values for the schema's columns from a decoded object; the id and vector fields are skipped.
    func values(_ object: [String: Any], line: Int) throws -> [String: Value] {
        var out: [String: Value] = [:]
        for (key, raw) in object where key != idField && key != vectorField {
            guard let (_, spec) = schema.column(key) else {
                if ignoreExtra { continue }
                throw LineError(line: line, reason: "unknown column `\(key)` (pass --ignore-extra to skip unknown fields)")
            }
            out[key] = try value(raw, column: spec, line: line)
        }
        return out
    }

    func vector(_ raw: Any?, line: Int) throws -> [Float] {
        var array = raw as? [Any]
        if array == nil, let s = raw as? String { array = try? JSONSerialization.jsonObject(with: Data(s.utf8)) as? [Any] }
        guard let array else { throw LineError(line: line, reason: "no `\(vectorField)` array") }
        var out: [Float] = []
        out.reserveCapacity(array.count)
        for (i, x) in array.enumerated() {
            guard let n = x as? NSNumber else { throw LineError(line: line, reason: "`\(vectorField)`[\(i)] is not a number") }
            out.append(n.floatValue)
        }
        return out
    }
}

/// Readers of every supported input; each calls `emit` per row (which may throw to stop).
enum ImportSources {
    static func jsonLines(_ path: String, builder: RowBuilder, emit: (Result<ImportRow, LineError>) throws -> Void) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw LineError(line: 0, reason: "cannot read \(path)") }
        var line = 0
        var start = data.startIndex
        while start < data.endIndex {
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            line += 1
            let slice = data[start..<end]
            start = end + 1
            if slice.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            do {
                guard let object = try? JSONSerialization.jsonObject(with: slice) as? [String: Any] else {
                    throw LineError(line: line, reason: "not a JSON object")
                }
                let row = ImportRow(line: line, id: try builder.id(object[builder.idField], line: line),
                                    vector: try builder.vector(object[builder.vectorField], line: line),
                                    values: try builder.values(object, line: line))
                try emit(.success(row))
            } catch let error as LineError {
                try emit(.failure(error))
            }
        }
    }

    static func csv(_ path: String, builder: RowBuilder, dimensions: Int, emit: (Result<ImportRow, LineError>) throws -> Void) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw LineError(line: 0, reason: "cannot read \(path)") }
        let records = parseCSV(String(decoding: data, as: UTF8.self))
        guard let header = records.first?.fields else { return }
        let columnOf = Dictionary(header.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let split = (0..<dimensions).map { columnOf["v\($0)"] }
        let splitVector = columnOf[builder.vectorField] == nil && split.allSatisfy { $0 != nil }
        for record in records.dropFirst() {
            let line = record.line
            if record.fields.count == 1 && record.fields[0].isEmpty { continue }
            do {
                guard record.fields.count == header.count else {
                    throw LineError(line: line, reason: "\(record.fields.count) fields, the header has \(header.count)")
                }
                var object: [String: Any] = [:]
                for (i, name) in header.enumerated() where !(splitVector && name.hasPrefix("v") && Int(name.dropFirst()) != nil) {
                    let field = record.fields[i]
                    object[name] = field.isEmpty ? NSNull() : field
                }
                let vector: [Float]
                if splitVector {
                    vector = try split.map { i in
                        guard let v = Float(record.fields[i!]) else { throw LineError(line: line, reason: "\(header[i!]) is not a number") }
                        return v
                    }
                } else {
                    vector = try builder.vector(object[builder.vectorField], line: line)
                }
                let row = ImportRow(line: line, id: try builder.id(object[builder.idField] is NSNull ? nil : object[builder.idField], line: line),
                                    vector: vector, values: try builder.values(object, line: line))
                try emit(.success(row))
            } catch let error as LineError {
                try emit(.failure(error))
            }
        }
    }

    /// A FORMAT.md dataset directory: base.f32 and base.jsonl (ids are the row numbers unless given).
    static func dataset(_ path: String, builder: RowBuilder, emit: (Result<ImportRow, LineError>) throws -> Void) throws {
        guard let meta = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/meta.json")))) as? [String: Any],
              let dim = meta["dim"] as? Int else { throw LineError(line: 0, reason: "\(path)/meta.json lacks dim") }
        let vectors = try floats(path + "/base.f32")
        try attributesWithVectors(path + "/base.jsonl", vectors: vectors, dim: dim, builder: builder, emit: emit)
    }

    /// .fvecs or .npy vectors paired row by row with a JSONL of attributes.
    static func vectorFile(_ path: String, attributes: String?, builder: RowBuilder,
                           emit: (Result<ImportRow, LineError>) throws -> Void) throws {
        let (vectors, dim) = path.hasSuffix(".npy") ? try npy(path) : try fvecs(path)
        if let attributes {
            try attributesWithVectors(attributes, vectors: vectors, dim: dim, builder: builder, emit: emit)
        } else {
            for row in 0..<(vectors.count / max(dim, 1)) {
                try emit(.success(ImportRow(line: row + 1, id: try builder.id(nil, line: row + 1, fallback: row),
                                            vector: Array(vectors[row * dim ..< (row + 1) * dim]), values: [:])))
            }
        }
    }

    private static func attributesWithVectors(_ path: String, vectors: [Float], dim: Int, builder: RowBuilder,
                                              emit: (Result<ImportRow, LineError>) throws -> Void) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw LineError(line: 0, reason: "cannot read \(path)") }
        let count = vectors.count / max(dim, 1)
        var row = 0
        var start = data.startIndex
        while start < data.endIndex {
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            let slice = data[start..<end]
            start = end + 1
            if slice.isEmpty { continue }
            let line = row + 1
            defer { row += 1 }
            do {
                guard row < count else { throw LineError(line: line, reason: "more attribute lines than vectors (\(count))") }
                guard let object = try? JSONSerialization.jsonObject(with: slice) as? [String: Any] else {
                    throw LineError(line: line, reason: "not a JSON object")
                }
                try emit(.success(ImportRow(line: line, id: try builder.id(object[builder.idField], line: line, fallback: row),
                                            vector: Array(vectors[row * dim ..< (row + 1) * dim]),
                                            values: try builder.values(object, line: line))))
            } catch let error as LineError {
                try emit(.failure(error))
            }
        }
    }

    static func floats(_ path: String) throws -> [Float] {
        guard let data = FileManager.default.contents(atPath: path) else { throw LineError(line: 0, reason: "cannot read \(path)") }
        return data.withUnsafeBytes { raw in
            (0..<raw.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    static func fvecs(_ path: String) throws -> ([Float], Int) {
        guard let data = FileManager.default.contents(atPath: path) else { throw LineError(line: 0, reason: "cannot read \(path)") }
        return try data.withUnsafeBytes { raw throws -> ([Float], Int) in
            var out: [Float] = []
            var offset = 0, dim = 0, record = 0
            while offset < raw.count {
                record += 1
                guard offset + 4 <= raw.count else { throw LineError(line: record, reason: "truncated .fvecs record") }
                let d = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
                if dim == 0 { dim = d }
                guard d == dim, d > 0, offset + 4 + 4 * d <= raw.count else {
                    throw LineError(line: record, reason: "bad .fvecs record (dimension \(d), expected \(dim))")
                }
                for i in 0..<d {
                    out.append(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 + 4 * i, as: UInt32.self))))
                }
                offset += 4 + 4 * d
            }
            return (out, dim)
        }
    }

    /// A 2-D little-endian float32 or float64 .npy array (C order).
    static func npy(_ path: String) throws -> ([Float], Int) {
        guard let data = FileManager.default.contents(atPath: path), data.count > 10,
              data.prefix(6) == Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else {
            throw LineError(line: 0, reason: "\(path) is not a .npy file")
        }
        let major = data[data.startIndex + 6]
        let headerLength = major == 1 ? Int(data[8]) | Int(data[9]) << 8
            : Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
        let headerStart = major == 1 ? 10 : 12
        let header = String(decoding: data[headerStart..<headerStart + headerLength], as: UTF8.self)
        guard !header.contains("'fortran_order': True") else { throw LineError(line: 0, reason: "Fortran-order .npy is not supported") }
        let isF8 = header.contains("'<f8'")
        guard isF8 || header.contains("'<f4'") else { throw LineError(line: 0, reason: ".npy must be <f4 or <f8, header \(header)") }
        guard let shapeStart = header.range(of: "'shape': ("), let shapeEnd = header[shapeStart.upperBound...].firstIndex(of: ")") else {
            throw LineError(line: 0, reason: ".npy header has no shape")
        }
        let dims = header[shapeStart.upperBound..<shapeEnd].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard dims.count == 2 else { throw LineError(line: 0, reason: ".npy must be 2-D (rows × dimensions)") }
        let body = data[(headerStart + headerLength)...]
        let n = dims[0] * dims[1]
        guard body.count >= n * (isF8 ? 8 : 4) else { throw LineError(line: 0, reason: ".npy is truncated") }
        let values: [Float] = body.withUnsafeBytes { raw in
            (0..<n).map { i in
                isF8 ? Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
                    : Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        }
        return (values, dims[1])
    }
}

/// RFC 4180 records with the line each starts on.
func parseCSV(_ text: String) -> [(line: Int, fields: [String])] {
    var records: [(Int, [String])] = []
    var fields: [String] = []
    var field = ""
    var quoted = false
    var line = 1, recordLine = 1
    var iterator = text.unicodeScalars.makeIterator()
    var pending: Unicode.Scalar? = nil
    func next() -> Unicode.Scalar? {
        if let p = pending { pending = nil; return p }
        return iterator.next()
    }
    while let c = next() {
        if quoted {
            if c == "\"" {
                if let n = iterator.next() {
                    if n == "\"" { field.unicodeScalars.append("\"") } else { quoted = false; pending = n }
                } else { quoted = false }
            } else {
                if c == "\n" { line += 1 }
                field.unicodeScalars.append(c)
            }
            continue
        }
        switch c {
        case "\"": quoted = true
        case ",": fields.append(field); field = ""
        case "\r": continue
        case "\n":
            fields.append(field)
            records.append((recordLine, fields))
            fields = []
            field = ""
            line += 1
            recordLine = line
        default: field.unicodeScalars.append(c)
        }
    }
    if !field.isEmpty || !fields.isEmpty {
        fields.append(field)
        records.append((recordLine, fields))
    }
    return records
}

/// JSONSerialization decodes booleans as NSNumber too; on Linux `x is Bool` also holds for 0 and 1, so tell
/// them apart by the number's type code.
func isJSONBool(_ n: NSNumber) -> Bool {
    let type = String(cString: n.objCType)
    return type == "c" || type == "B"
}
