import Foundation
import QueryPlanner

// Readers of the import formats (JSONL, CSV, FORMAT.md dataset directories, .fvecs, .npy), shared by
// `hybridctl import` and the fuzz targets. Every reader checks every length against the bytes present and
// reports a bad record as a `LineError` (never a crash).

/// One row to import, with the line (or record) it came from.
package struct ImportRow {
    package var line: Int
    package var id: RowID
    package var vector: [Float]
    package var values: [String: Value]
}

/// A bad line: where and why.
package struct LineError: Error {
    package var line: Int
    package var reason: String

    package init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }
}

/// Turns input values into typed column values per the schema.
package struct RowBuilder {
    package let schema: Schema
    package let idField: String
    package let vectorField: String
    package let ignoreExtra: Bool

    package init(schema: Schema, idField: String = "id", vectorField: String = "vector", ignoreExtra: Bool = false) {
        self.schema = schema
        self.idField = idField
        self.vectorField = vectorField
        self.ignoreExtra = ignoreExtra
    }

    package func id(_ raw: Any?, line: Int, fallback: Int? = nil) throws -> RowID {
        switch (schema.id, raw) {
        case (.integer, let n as NSNumber) where !isJSONBool(n):
            if let v = exactInteger(n) { return .int(v) }
            throw LineError(
                line: line, reason: "`\(idField)` \(n) is not an integer id (whole, from \(Int64.min) to \(Int64.max))")
        case (.integer, let s as String):
            if let v = Int64(s) { return .int(v) }
            throw LineError(
                line: line,
                reason: "`\(idField)` \"\(s)\" is not an integer id (whole, from \(Int64.min) to \(Int64.max))")
        case (.string, let s as String): return .string(s)
        case (.string, let n as NSNumber) where !isJSONBool(n): return .string(n.stringValue)
        case (_, nil):
            if let fallback { return schema.id == .integer ? .int(Int64(fallback)) : .string(String(fallback)) }
        default: break
        }
        throw LineError(
            line: line,
            reason: raw == nil ? "no `\(idField)` field" : "`\(idField)` is not a valid \(schema.id.rawValue) id")
    }

    package func value(_ raw: Any, column: ColumnSpec, line: Int) throws -> Value {
        if raw is NSNull { return .null }
        let number = raw as? NSNumber
        let isBool = number.map(isJSONBool) ?? false
        switch column.type {
        case .integer:
            if let n = number, !isBool {
                if let v = exactInteger(n) { return .integer(v) }
                throw LineError(
                    line: line,
                    reason:
                        "column `\(column.name)` is integer, got \(n): not whole, or outside \(Int64.min)...\(Int64.max)"
                )
            }
            if let s = raw as? String {
                if let v = Int64(s) { return .integer(v) }
                throw LineError(
                    line: line,
                    reason:
                        "column `\(column.name)` is integer, got \"\(s)\": not a whole number from \(Int64.min) to \(Int64.max)"
                )
            }
        case .real:
            if let n = number, !isBool {
                guard n.doubleValue.isFinite else {
                    throw LineError(
                        line: line, reason: "column `\(column.name)` is real, got \(n), which is not a finite number")
                }
                return .real(n.doubleValue)
            }
            if let s = raw as? String, let v = Double(s) {
                guard v.isFinite else {
                    throw LineError(
                        line: line,
                        reason: "column `\(column.name)` is real, got \"\(s)\": NaN and infinities cannot be stored")
                }
                return .real(v)
            }
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
        throw LineError(
            line: line, reason: "column `\(column.name)` expects \(column.type.rawValue), got \(describe(raw))")
    }

    /// Values for the schema's columns from a decoded object; the id and vector fields are skipped.
    package func values(_ object: [String: Any], line: Int) throws -> [String: Value] {
        var out: [String: Value] = [:]
        for (key, raw) in object where key != idField && key != vectorField {
            guard let (_, spec) = schema.column(key) else {
                if ignoreExtra { continue }
                throw LineError(
                    line: line, reason: "unknown column `\(key)` (pass --ignore-extra to skip unknown fields)")
            }
            out[key] = try value(raw, column: spec, line: line)
        }
        return out
    }

    package func vector(_ raw: Any?, line: Int) throws -> [Float] {
        var array = raw as? [Any]
        if array == nil, let s = raw as? String {
            array = try? JSONSerialization.jsonObject(with: Data(s.utf8)) as? [Any]
        }
        guard let array else { throw LineError(line: line, reason: "no `\(vectorField)` array") }
        var out: [Float] = []
        out.reserveCapacity(array.count)
        for (i, x) in array.enumerated() {
            guard let n = x as? NSNumber else {
                throw LineError(line: line, reason: "`\(vectorField)`[\(i)] is not a number")
            }
            out.append(n.floatValue)
        }
        return out
    }
}

/// Readers of every supported input; each calls `emit` per row (which may throw to stop).
package enum ImportSources {
    package static func jsonLines(
        _ path: String, builder: RowBuilder, emit: (Result<ImportRow, LineError>) throws -> Void
    ) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LineError(line: 0, reason: "cannot read \(path)")
        }
        try jsonLines(data: data, builder: builder, emit: emit)
    }

    /// A line's JSON object, or why it is not one: the parser's own reason where it is not JSON ("Number 1e400 is not
    /// representable in Swift.", "Unexpected end of file during JSON parse."), else what it is instead.
    static func jsonObject(_ line: Data, line number: Int) throws(LineError) -> [String: Any] {
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: line)
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw LineError(line: number, reason: "not valid JSON" + (reason.map { ": \($0)" } ?? ""))
        }
        guard let object = value as? [String: Any] else {
            throw LineError(line: number, reason: "not a JSON object (\(value is [Any] ? "an array" : "a scalar"))")
        }
        return object
    }

    /// One JSON object per line (a UTF-8 byte order mark before the first is skipped).
    package static func jsonLines(
        data: Data, builder: RowBuilder, emit: (Result<ImportRow, LineError>) throws -> Void
    ) throws {
        let data = withoutByteOrderMark(data)
        var line = 0
        var start = data.startIndex
        while start < data.endIndex {
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            line += 1
            let slice = data[start..<end]
            start = end + 1
            if slice.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            do {
                let object = try jsonObject(slice, line: line)
                let row = ImportRow(
                    line: line, id: try builder.id(object[builder.idField], line: line),
                    vector: try builder.vector(object[builder.vectorField], line: line),
                    values: try builder.values(object, line: line))
                try emit(.success(row))
            } catch let error as LineError {
                try emit(.failure(error))
            }
        }
    }

    package static func csv(
        _ path: String, builder: RowBuilder, dimensions: Int, emit: (Result<ImportRow, LineError>) throws -> Void
    ) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LineError(line: 0, reason: "cannot read \(path)")
        }
        try csv(data: data, builder: builder, dimensions: dimensions, emit: emit)
    }

    /// RFC 4180 CSV with a header (a UTF-8 byte order mark before it is skipped).
    package static func csv(
        data: Data, builder: RowBuilder, dimensions: Int, emit: (Result<ImportRow, LineError>) throws -> Void
    ) throws {
        let records = parseCSV(String(decoding: withoutByteOrderMark(data), as: UTF8.self))
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
                for (i, name) in header.enumerated()
                where !(splitVector && name.hasPrefix("v") && Int(name.dropFirst()) != nil) {
                    let field = record.fields[i]
                    object[name] = field.isEmpty ? NSNull() : field
                }
                let vector: [Float]
                if splitVector {
                    vector = try split.map { i in
                        guard let v = Float(record.fields[i!]) else {
                            throw LineError(line: line, reason: "\(header[i!]) is not a number")
                        }
                        return v
                    }
                } else {
                    vector = try builder.vector(object[builder.vectorField], line: line)
                }
                let row = ImportRow(
                    line: line,
                    id: try builder.id(object[builder.idField] is NSNull ? nil : object[builder.idField], line: line),
                    vector: vector, values: try builder.values(object, line: line))
                try emit(.success(row))
            } catch let error as LineError {
                try emit(.failure(error))
            }
        }
    }

    /// A FORMAT.md dataset directory: base.f32 and base.jsonl (ids are the row numbers unless given).
    package static func dataset(
        _ path: String, builder: RowBuilder, emit: (Result<ImportRow, LineError>) throws -> Void
    ) throws {
        guard
            let meta =
                (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/meta.json"))))
                as? [String: Any],
            let dim = meta["dim"] as? Int
        else { throw LineError(line: 0, reason: "\(path)/meta.json lacks dim") }
        let vectors = try floats(path + "/base.f32")
        try attributesWithVectors(path + "/base.jsonl", vectors: vectors, dim: dim, builder: builder, emit: emit)
    }

    /// .fvecs or .npy vectors paired row by row with a JSONL of attributes.
    package static func vectorFile(
        _ path: String, attributes: String?, builder: RowBuilder,
        emit: (Result<ImportRow, LineError>) throws -> Void
    ) throws {
        let (vectors, dim) = path.hasSuffix(".npy") ? try npy(path) : try fvecs(path)
        if let attributes {
            try attributesWithVectors(attributes, vectors: vectors, dim: dim, builder: builder, emit: emit)
        } else {
            for row in 0..<(vectors.count / max(dim, 1)) {
                try emit(
                    .success(
                        ImportRow(
                            line: row + 1, id: try builder.id(nil, line: row + 1, fallback: row),
                            vector: Array(vectors[row * dim..<(row + 1) * dim]), values: [:])))
            }
        }
    }

    private static func attributesWithVectors(
        _ path: String, vectors: [Float], dim: Int, builder: RowBuilder,
        emit: (Result<ImportRow, LineError>) throws -> Void
    ) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LineError(line: 0, reason: "cannot read \(path)")
        }
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
                guard row < count else {
                    throw LineError(line: line, reason: "more attribute lines than vectors (\(count))")
                }
                let object = try jsonObject(slice, line: line)
                try emit(
                    .success(
                        ImportRow(
                            line: line, id: try builder.id(object[builder.idField], line: line, fallback: row),
                            vector: Array(vectors[row * dim..<(row + 1) * dim]),
                            values: try builder.values(object, line: line))))
            } catch let error as LineError {
                try emit(.failure(error))
            }
        }
        guard row >= count else {
            throw LineError(
                line: 0, reason: "\(count) vectors but \(row) attribute lines in \(path): the counts must match")
        }
    }

    package static func floats(_ path: String) throws -> [Float] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LineError(line: 0, reason: "cannot read \(path)")
        }
        guard data.count % 4 == 0 else {
            throw LineError(line: 0, reason: "\(path) has \(data.count) bytes, not a whole number of float32 values")
        }
        return unsafe data.withUnsafeBytes { raw in
            (0..<raw.count / 4).map {
                unsafe Float(
                    bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        }
    }

    package static func fvecs(_ path: String) throws -> ([Float], Int) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LineError(line: 0, reason: "cannot read \(path)")
        }
        return try fvecs(data)
    }

    /// .fvecs records: a little-endian Int32 dimension, then that many float32; every record the same
    /// dimension. The line of an error is the record's number.
    package static func fvecs(_ data: Data) throws -> ([Float], Int) {
        unsafe try data.withUnsafeBytes { raw throws -> ([Float], Int) in
            var out: [Float] = []
            var offset = 0, dim = 0, record = 0
            while offset < raw.count {
                record += 1
                guard offset + 4 <= raw.count else {
                    throw LineError(
                        line: record,
                        reason:
                            "truncated .fvecs: \(raw.count - offset) bytes where a record's 4-byte dimension should be")
                }
                let d = unsafe Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
                guard d > 0 else { throw LineError(line: record, reason: "bad .fvecs record: dimension \(d)") }
                if dim == 0 { dim = d }
                guard d == dim else {
                    throw LineError(
                        line: record, reason: "bad .fvecs record: dimension \(d), but the first record has \(dim)")
                }
                let available = (raw.count - offset - 4) / 4
                guard d <= available else {
                    throw LineError(
                        line: record, reason: "truncated .fvecs record: \(d) components declared, \(available) present")
                }
                for i in 0..<d {
                    unsafe out.append(
                        Float(
                            bitPattern: UInt32(
                                littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 + 4 * i, as: UInt32.self))))
                }
                offset += 4 + 4 * d
            }
            return (out, dim)
        }
    }

    package static func npy(_ path: String) throws -> ([Float], Int) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LineError(line: 0, reason: "cannot read \(path)")
        }
        return try npy(data)
    }

    /// A 2-D little-endian float32 or float64 .npy array (C order). Every length and count is checked
    /// against the bytes present, with overflow-checked arithmetic, before anything is read.
    package static func npy(_ data: Data) throws -> ([Float], Int) {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes.prefix(6) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59] else {
            throw LineError(line: 0, reason: "not a .npy file (no \\x93NUMPY magic)")
        }
        let major = bytes[6]
        guard (1...3).contains(major) else {
            throw LineError(line: 0, reason: ".npy version \(major) is not supported")
        }
        let headerStart = major == 1 ? 10 : 12
        guard bytes.count >= headerStart else {
            throw LineError(line: 0, reason: ".npy is truncated in its header length")
        }
        let headerLength =
            major == 1
            ? Int(bytes[8]) | Int(bytes[9]) << 8
            : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        guard headerLength <= bytes.count - headerStart else {
            throw LineError(
                line: 0,
                reason: ".npy header says \(headerLength) bytes, the file has \(bytes.count - headerStart) after it")
        }
        let header = String(decoding: bytes[headerStart..<headerStart + headerLength], as: UTF8.self)
        guard !header.contains("'fortran_order': True") else {
            throw LineError(line: 0, reason: "Fortran-order .npy is not supported")
        }
        let isF8 = header.contains("'<f8'")
        guard isF8 || header.contains("'<f4'") else {
            throw LineError(
                line: 0,
                reason: ".npy must hold <f4 or <f8 (little-endian float32 or float64), header \(header.prefix(200))")
        }
        guard let shapeStart = header.range(of: "'shape': ("),
            let shapeEnd = header[shapeStart.upperBound...].firstIndex(of: ")")
        else {
            throw LineError(line: 0, reason: ".npy header has no shape")
        }
        let fields = header[shapeStart.upperBound..<shapeEnd].split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let dims = fields.compactMap { Int($0) }
        guard dims.count == 2, fields.count == 2 else {
            throw LineError(
                line: 0, reason: ".npy must be 2-D (rows × dimensions), shape (\(fields.joined(separator: ", ")))")
        }
        guard dims[0] >= 0, dims[1] >= 1 else {
            throw LineError(line: 0, reason: ".npy shape (\(dims[0]), \(dims[1])) is not rows ≥ 0 × dimensions ≥ 1")
        }
        let width = isF8 ? 8 : 4
        let (n, o1) = dims[0].multipliedReportingOverflow(by: dims[1])
        let (needed, o2) = n.multipliedReportingOverflow(by: width)
        let body = bytes.count - headerStart - headerLength
        guard !o1, !o2, needed <= body else {
            throw LineError(
                line: 0,
                reason: ".npy shape (\(dims[0]), \(dims[1])) needs more bytes than the \(body) present (truncated?)")
        }
        let start = headerStart + headerLength
        let values: [Float] = unsafe bytes.withUnsafeBytes { all in
            let raw = unsafe UnsafeRawBufferPointer(rebasing: all[start...])
            return (0..<n).map { i in
                unsafe isF8
                    ? Float(
                        Double(
                            bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                    )
                    : Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        }
        return (values, dims[1])
    }
}

/// `data` without a leading UTF-8 byte order mark (EF BB BF), which spreadsheet exports put before the header.
package func withoutByteOrderMark(_ data: Data) -> Data {
    data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data
}

/// RFC 4180 records with the line each starts on.
package func parseCSV(_ text: String) -> [(line: Int, fields: [String])] {
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
                } else {
                    quoted = false
                }
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

/// The Int64 a JSON number holds exactly, or nil: 1.5, 1e19, 18446744073709551615 and
/// -9223372036854775809 are not integers of a column (JSONSerialization gives them as a double, an unsigned
/// or a decimal number; a double's or decimal's `int64Value` would wrap or truncate them).
package func exactInteger(_ n: NSNumber) -> Int64? {
    if n is NSDecimalNumber { return Int64(n.stringValue) }
    switch unsafe String(cString: n.objCType) {
    case "q", "l", "i", "s": return n.int64Value
    case "Q", "L", "I", "S", "C": return n.uint64Value <= UInt64(Int64.max) ? Int64(n.uint64Value) : nil
    default: return Int64(exactly: n.doubleValue)
    }
}

/// A raw input value for an error message: its JSON spelling, never the type alone.
package func describe(_ raw: Any) -> String {
    if let s = raw as? String { return "\"\(s)\"" }
    if let n = raw as? NSNumber { return isJSONBool(n) ? (n.boolValue ? "true" : "false") : "\(n)" }
    if raw is [Any] { return "an array" }
    if raw is [String: Any] { return "an object" }
    return "\(raw)"
}

/// JSONSerialization decodes booleans as NSNumber too; on Linux `x is Bool` also holds for 0 and 1, so tell
/// them apart by the number's type code.
package func isJSONBool(_ n: NSNumber) -> Bool {
    let type = unsafe String(cString: n.objCType)
    return type == "c" || type == "B"
}
