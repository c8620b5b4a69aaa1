/// An error in a filter's text or JSON form, with the place it was found.
public struct FilterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset in the filter text, or nil for the JSON form.
    public var offset: Int?
    public var message: String
    public init(offset: Int?, _ message: String) {
        self.offset = offset
        self.message = message
    }
    public var description: String { offset.map { "\(message) at offset \($0)" } ?? message }
}

extension Filter {
    /// Reads the JSON tree form of FORMAT.md (`{"and": [..]}`, `{"eq": [col, v]}`, `{"between": [col, lo, hi]}`,
    /// `{"in": [col, [v, ...]]}`, …) as decoded by `JSONSerialization`.
    /// - Throws: `FilterError` naming the node that is not of the form.
    public init(json: Any) throws(FilterError) {
        try self.init(json: json, depth: 0)
    }

    private init(json: Any, depth: Int) throws(FilterError) {
        guard depth < FilterParser.maximumDepth else {
            throw FilterError(offset: nil, "the filter nests deeper than \(FilterParser.maximumDepth) levels")
        }
        guard let object = json as? [String: Any], object.count == 1, let (key, body) = object.first else {
            let shown = "\(json)"
            throw FilterError(
                offset: nil,
                "a filter node must be an object with one key, got \(shown.count > 80 ? shown.prefix(80) + "…" : shown)"
            )
        }
        switch key {
        case "and", "or":
            guard let items = body as? [Any], !items.isEmpty else {
                throw FilterError(offset: nil, "'\(key)' expects a non-empty array")
            }
            var children: [Filter] = []
            for item in items { children.append(try Filter(json: item, depth: depth + 1)) }
            self = key == "and" ? .and(children) : .or(children)
        case "not":
            self = .not(try Filter(json: body, depth: depth + 1))
        case "eq", "ne", "lt", "lte", "gt", "gte":
            let op: Comparison =
                switch key {
                case "eq": .equal
                case "ne": .notEqual
                case "lt": .less
                case "lte": .lessOrEqual
                case "gt": .greater
                default: .greaterOrEqual
                }
            guard let args = body as? [Any], args.count == 2, let column = args[0] as? String else {
                throw FilterError(offset: nil, "'\(key)' expects [column, value]")
            }
            self = .compare(column: column, op, try Value(json: args[1]))
        case "between":
            guard let args = body as? [Any], args.count == 3, let column = args[0] as? String else {
                throw FilterError(offset: nil, "'between' expects [column, low, high]")
            }
            self = .between(column: column, try Value(json: args[1]), try Value(json: args[2]))
        case "in":
            guard let args = body as? [Any], args.count == 2, let column = args[0] as? String,
                let list = args[1] as? [Any]
            else { throw FilterError(offset: nil, "'in' expects [column, [values]]") }
            var values: [Value] = []
            for item in list { values.append(try Value(json: item)) }
            self = .isIn(column: column, values)
        case "is_null", "isnull":
            guard let column = body as? String else { throw FilterError(offset: nil, "'\(key)' expects a column") }
            self = .isNull(column: column)
        case "is_not_null", "isnotnull":
            guard let column = body as? String else { throw FilterError(offset: nil, "'\(key)' expects a column") }
            self = .isNotNull(column: column)
        default:
            throw FilterError(offset: nil, "unknown filter operator '\(key)'")
        }
    }
}

extension Value {
    /// A JSON scalar (as decoded by `JSONSerialization`) as a value.
    /// - Throws: `FilterError` for arrays, objects and other types.
    public init(json: Any) throws(FilterError) {
        switch json {
        case let s as String: self = .text(s)
        case let n as NSNumberLike: self = n.filterValue
        case is NSNullLike: self = .null
        default: throw FilterError(offset: nil, "expected a number, string, boolean or null, got \(json)")
        }
    }
}

#if canImport(Foundation)
import Foundation

/// Foundation numbers: JSONSerialization decodes every number and boolean as NSNumber.
protocol NSNumberLike { var filterValue: Value { get } }
protocol NSNullLike {}
extension NSNull: NSNullLike {}
extension NSNumber: NSNumberLike {
    var filterValue: Value {
        let type = String(cString: objCType)
        if type == "c" || type == "B" { return .boolean(boolValue) }
        if type == "d" || type == "f" || self is NSDecimalNumber { return .real(doubleValue) }
        // An unsigned number above Int64.max would wrap in int64Value: compared as the real it is.
        if ["Q", "L", "I", "S", "C"].contains(type), uint64Value > UInt64(Int64.max) { return .real(doubleValue) }
        return .integer(int64Value)
    }
}
#endif
