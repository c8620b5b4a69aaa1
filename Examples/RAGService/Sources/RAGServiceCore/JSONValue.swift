import Foundation
import HybridStore

/// A JSON scalar as it arrives in a request or leaves in a response.
enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "a value must be a JSON scalar")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        }
    }

    /// The store's value for a column of `type` (blobs travel as base64).
    func value(for type: ColumnType, column: String) throws(ServiceError) -> Value {
        switch (self, type) {
        case (.null, _): return .null
        case (.integer(let i), .integer): return .integer(i)
        case (.integer(let i), .real): return .real(Double(i))
        case (.number(let d), .real): return .real(d)
        case (.string(let s), .text): return .text(s)
        case (.bool(let b), .boolean): return .boolean(b)
        case (.string(let s), .blob):
            guard let data = Data(base64Encoded: s) else {
                throw .badRequest("column `\(column)`: a blob is a base64 string")
            }
            return .blob([UInt8](data))
        default:
            throw .badRequest("column `\(column)` holds \(type.rawValue) values; got \(self)")
        }
    }

    init(_ value: Value) {
        switch value {
        case .null: self = .null
        case .integer(let i): self = .integer(i)
        case .real(let d): self = .number(d)
        case .text(let s): self = .string(s)
        case .boolean(let b): self = .bool(b)
        case .blob(let bytes): self = .string(Data(bytes).base64EncodedString())
        }
    }
}

/// A row id as JSON: a string or an integer, as the collection's schema says.
enum JSONRowID: Codable, Sendable, Equatable {
    case int(Int64)
    case string(String)

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int64.self) { self = .int(i) } else { self = .string(try c.decode(String.self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let i): try c.encode(i)
        case .string(let s): try c.encode(s)
        }
    }

    init(_ id: RowID) {
        switch id {
        case .int(let i): self = .int(i)
        case .string(let s): self = .string(s)
        }
    }

    var rowID: RowID {
        switch self {
        case .int(let i): .int(i)
        case .string(let s): .string(s)
        }
    }
}

/// A vector as a JSON array of numbers or as base64 of little-endian float32s.
func decodeVector(array: [Float]?, base64: String?) throws(ServiceError) -> [Float]? {
    if let array {
        guard base64 == nil else { throw .badRequest("a vector is given as `vector` or as `vector_base64`, not both") }
        return array
    }
    guard let base64 else { return nil }
    guard let data = Data(base64Encoded: base64), data.count % 4 == 0 else {
        throw .badRequest("vector_base64 must be base64 of little-endian float32 values")
    }
    return data.withUnsafeBytes { raw in
        (0..<raw.count / 4).map {
            Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
        }
    }
}
