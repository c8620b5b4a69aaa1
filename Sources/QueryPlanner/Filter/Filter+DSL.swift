// The Swift DSL: `Column("price") < 10 && Column("tag").in(["news", "tech"])`.

/// A column reference in the filter DSL.
public struct Column: Sendable {
    public let name: String
    public init(_ name: String) { self.name = name }

    public static func == (c: Column, v: Value) -> Filter { .compare(column: c.name, .equal, v) }
    public static func != (c: Column, v: Value) -> Filter { .compare(column: c.name, .notEqual, v) }
    public static func < (c: Column, v: Value) -> Filter { .compare(column: c.name, .less, v) }
    public static func <= (c: Column, v: Value) -> Filter { .compare(column: c.name, .lessOrEqual, v) }
    public static func > (c: Column, v: Value) -> Filter { .compare(column: c.name, .greater, v) }
    public static func >= (c: Column, v: Value) -> Filter { .compare(column: c.name, .greaterOrEqual, v) }

    public func `in`(_ values: [Value]) -> Filter { .isIn(column: name, values) }
    public func between(_ low: Value, _ high: Value) -> Filter { .between(column: name, low, high) }
    public var isNull: Filter { .isNull(column: name) }
    public var isNotNull: Filter { .isNotNull(column: name) }
}

extension Filter {
    public static func && (a: Filter, b: Filter) -> Filter { Filter.and([a, b]).normalized }
    public static func || (a: Filter, b: Filter) -> Filter { Filter.or([a, b]).normalized }
    public static prefix func ! (a: Filter) -> Filter { .not(a) }
}

extension Value: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral
{
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .real(value) }
    public init(stringLiteral value: String) { self = .text(value) }
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
    public init(nilLiteral: ()) { self = .null }
}
