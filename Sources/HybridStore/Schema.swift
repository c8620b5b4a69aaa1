import Foundation
import HNSW
import QueryPlanner

/// The type of a scalar column.
public enum ColumnType: String, Sendable, Codable, CaseIterable {
    case integer, real, text, boolean, blob

    var sqlType: String {
        switch self {
        case .integer, .boolean: "INTEGER"
        case .real: "REAL"
        case .text: "TEXT"
        case .blob: "BLOB"
        }
    }
}

/// One scalar column of a collection.
public struct ColumnSpec: Sendable, Codable, Equatable {
    public var name: String
    public var type: ColumnType
    public var nullable: Bool
    /// Also kept in memory for the planner's filters.
    public var filterable: Bool
    /// Text indexed for keyword search (an FTS5 index over the collection's searchable columns, kept in the
    /// writing transaction). Text columns only.
    public var searchable: Bool

    public init(
        name: String, type: ColumnType, nullable: Bool = true, filterable: Bool = false, searchable: Bool = false
    ) {
        self.name = name
        self.type = type
        self.nullable = nullable
        self.filterable = filterable
        self.searchable = searchable
    }

    private enum CodingKeys: String, CodingKey { case name, type, nullable, filterable, searchable }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        type = try c.decode(ColumnType.self, forKey: .type)
        nullable = try c.decode(Bool.self, forKey: .nullable)
        filterable = try c.decode(Bool.self, forKey: .filterable)
        // Schemas written before keyword search have no such key.
        searchable = try c.decodeIfPresent(Bool.self, forKey: .searchable) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(type, forKey: .type)
        try c.encode(nullable, forKey: .nullable)
        try c.encode(filterable, forKey: .filterable)
        if searchable { try c.encode(searchable, forKey: .searchable) }
    }

    public static func integer(_ name: String, nullable: Bool = true, filterable: Bool = false) -> ColumnSpec {
        ColumnSpec(name: name, type: .integer, nullable: nullable, filterable: filterable)
    }
    public static func real(_ name: String, nullable: Bool = true, filterable: Bool = false) -> ColumnSpec {
        ColumnSpec(name: name, type: .real, nullable: nullable, filterable: filterable)
    }
    public static func text(
        _ name: String, nullable: Bool = true, filterable: Bool = false, searchable: Bool = false
    )
        -> ColumnSpec
    {
        ColumnSpec(name: name, type: .text, nullable: nullable, filterable: filterable, searchable: searchable)
    }
    public static func boolean(_ name: String, nullable: Bool = true, filterable: Bool = false) -> ColumnSpec {
        ColumnSpec(name: name, type: .boolean, nullable: nullable, filterable: filterable)
    }
    public static func blob(_ name: String, nullable: Bool = true) -> ColumnSpec {
        ColumnSpec(name: name, type: .blob, nullable: nullable, filterable: false)
    }
}

/// The vector of a collection and its index parameters.
public struct VectorSpec: Sendable, Codable, Equatable {
    public var dimensions: Int
    public var metric: Metric
    /// Links per node ("M").
    public var connectivity: Int
    /// Candidate list while building ("efConstruction").
    public var constructionEffort: Int

    public init(dimensions: Int, metric: Metric = .l2, connectivity: Int = 16, constructionEffort: Int = 200) {
        self.dimensions = dimensions
        self.metric = metric
        self.connectivity = connectivity
        self.constructionEffort = constructionEffort
    }

    package var hnswParameters: HNSWParameters {
        HNSWParameters(
            dimensions: dimensions, metric: metric, connectivity: connectivity,
            constructionEffort: constructionEffort)
    }
}

/// Whether a collection's ids are integers or strings.
public enum IDKind: String, Sendable, Codable {
    case integer, string
}

/// How keyword search splits a collection's searchable text into terms (an FTS5 tokenizer).
public enum TextTokenizer: String, Sendable, Codable, CaseIterable {
    /// Words by Unicode letters and digits, case- and diacritic-folded (FTS5's default).
    case unicode61
    /// As `unicode61`, then English stemming ("errors" finds "error").
    case porter
    /// Every run of three characters: substring search ("0x8007" finds "0x80070005"), any language.
    case trigram

    /// The FTS5 `tokenize` option.
    package var fts5Option: String {
        switch self {
        case .unicode61: "unicode61"
        case .porter: "porter unicode61"
        case .trigram: "trigram"
        }
    }
}

/// The fixed shape of a collection: its vector, its id kind, its columns and, optionally, the column that
/// names each row's tenant.
public struct Schema: Sendable, Codable, Equatable {
    public var vector: VectorSpec
    public var id: IDKind
    public var columns: [ColumnSpec]
    /// The column holding each row's tenant (a non-null, filterable text column), or nil. Rows of a tenant
    /// are reached through `store.tenant(name)`, counted against its quotas and metered for its usage.
    public var tenantColumn: String?
    /// How the searchable columns' text is split into terms.
    public var tokenizer: TextTokenizer

    public init(
        vector: VectorSpec, id: IDKind = .string, columns: [ColumnSpec] = [], tenantColumn: String? = nil,
        tokenizer: TextTokenizer = .unicode61
    ) {
        self.vector = vector
        self.id = id
        self.columns = columns
        self.tenantColumn = tenantColumn
        self.tokenizer = tokenizer
    }

    private enum CodingKeys: String, CodingKey { case vector, id, columns, tenantColumn, tokenizer }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vector = try c.decode(VectorSpec.self, forKey: .vector)
        id = try c.decode(IDKind.self, forKey: .id)
        columns = try c.decode([ColumnSpec].self, forKey: .columns)
        tenantColumn = try c.decodeIfPresent(String.self, forKey: .tenantColumn)
        tokenizer = try c.decodeIfPresent(TextTokenizer.self, forKey: .tokenizer) ?? .unicode61
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vector, forKey: .vector)
        try c.encode(id, forKey: .id)
        try c.encode(columns, forKey: .columns)
        try c.encodeIfPresent(tenantColumn, forKey: .tenantColumn)
        if tokenizer != .unicode61 || columns.contains(where: \.searchable) {
            try c.encode(tokenizer, forKey: .tokenizer)
        }
    }

    /// A schema from JSON a user wrote (`hybridctl create --schema FILE`), every member checked: one this type does
    /// not have is refused with `invalidSchema` naming it, where decoding alone would skip it (a misspelt
    /// `tenantColumn` would create a collection without tenant isolation, a misspelt `filterable` a column no filter
    /// can use). The catalog's own schemas are read without this check, so a store keeps opening in a version that
    /// has fewer members.
    public static func checked(json data: Data) throws(HybridStoreError) -> Schema {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw HybridStoreError(.invalidSchema, "the schema is not JSON: \(error.localizedDescription)")
        }
        func check(_ value: Any?, at path: String, allowed: Set<String>) throws(HybridStoreError) {
            guard let members = value as? [String: Any] else { return }  // decoding says what is wrong with it
            if let unknown = members.keys.filter({ !allowed.contains($0) }).min() {
                let member = path.isEmpty ? unknown : "\(path).\(unknown)"
                throw HybridStoreError(
                    .invalidSchema, "the schema has an unknown member `\(member)`", context: ["member": member])
            }
        }
        try check(object, at: "", allowed: ["vector", "id", "columns", "tenantColumn", "tokenizer"])
        let top = object as? [String: Any]
        try check(
            top?["vector"], at: "vector", allowed: ["dimensions", "metric", "connectivity", "constructionEffort"])
        for (i, column) in ((top?["columns"] as? [Any]) ?? []).enumerated() {
            try check(column, at: "columns[\(i)]", allowed: ["name", "type", "nullable", "filterable", "searchable"])
        }
        func path(_ keys: [any CodingKey]) -> String {
            String(keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().dropFirst())
        }
        let problem: (member: String, what: String)
        do {
            return try JSONDecoder().decode(Schema.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            problem = (path(context.codingPath + [key]), "is missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.dataCorrupted(context),
            let DecodingError.valueNotFound(_, context)
        {
            problem = (path(context.codingPath), context.debugDescription)
        } catch {
            throw HybridStoreError(.invalidSchema, "the schema is not valid: \(error)")
        }
        throw HybridStoreError(
            .invalidSchema, "the schema's member `\(problem.member)` \(problem.what)",
            context: ["member": problem.member])
    }

    /// The schema as stored in the catalog (JSON).
    func json() throws(HybridStoreError) -> String {
        do {
            return String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
        } catch {
            throw HybridStoreError(.invalidSchema, "cannot encode schema: \(error)")
        }
    }

    /// The positions of the searchable columns (the keyword index's columns, in schema order).
    var searchablePositions: [Int] { columns.indices.filter { columns[$0].searchable } }

    /// The position of the tenant column, if the collection has one.
    var tenantPosition: Int? { tenantColumn.flatMap { column($0)?.index } }

    /// The column named `name` and its position.
    public func column(_ name: String) -> (index: Int, spec: ColumnSpec)? {
        columns.firstIndex { $0.name == name }.map { ($0, columns[$0]) }
    }

    func validate() throws(HybridStoreError) {
        do throws(HNSWError) {
            try vector.hnswParameters.validate()
        } catch {
            throw HybridStoreError(.invalidSchema, "invalid vector spec: \(error.message)")
        }
        var seen = Set<String>()
        for c in columns {
            guard isValidName(c.name) else {
                throw HybridStoreError(
                    .invalidSchema,
                    "column name `\(c.name)` must be 1–64 characters of letters, digits and _, not starting with a digit",
                    context: ["column": c.name])
            }
            guard !reservedColumnNames.contains(c.name.lowercased()) else {
                throw HybridStoreError(
                    .invalidSchema,
                    "column name `\(c.name)` is reserved: outputs and exports use \(reservedColumnNames.sorted().map { "`\($0)`" }.joined(separator: ", ")) for the row itself",
                    context: ["column": c.name])
            }
            guard seen.insert(c.name).inserted else {
                throw HybridStoreError(.invalidSchema, "column `\(c.name)` appears twice", context: ["column": c.name])
            }
            if c.searchable && c.type != .text {
                throw HybridStoreError(
                    .invalidSchema, "column `\(c.name)` is \(c.type.rawValue): only text columns can be searchable",
                    context: ["column": c.name])
            }
            if c.type == .blob && c.filterable {
                throw HybridStoreError(
                    .invalidSchema, "blob column `\(c.name)` cannot be filterable", context: ["column": c.name])
            }
        }
        guard columns.count <= 500 else {
            throw HybridStoreError(.invalidSchema, "at most 500 columns, got \(columns.count)")
        }
        if let tenantColumn {
            guard let (_, spec) = column(tenantColumn), spec.type == .text, !spec.nullable, spec.filterable else {
                throw HybridStoreError(
                    .invalidSchema,
                    "tenant column `\(tenantColumn)` must be one of the columns, of type text, non-null and filterable",
                    context: ["column": tenantColumn])
            }
        }
    }
}

/// Column names that outputs give the row itself (its id, its distance, its vector):
/// a column of such a name would shadow them in JSON, CSV and exports. Compared case-insensitively,
/// like SQL identifiers.
let reservedColumnNames: Set<String> = ["id", "distance", "vector"]

/// Collection and column names: letters, digits and underscores, not starting with a digit, 1–64 long.
/// (They never reach SQL text: tables and columns are named by number. The rule keeps them printable and
/// usable in the filter syntax.)
func isValidName(_ name: String) -> Bool {
    guard (1...64).contains(name.count), let first = name.unicodeScalars.first,
        !("0"..."9").contains(first)
    else { return false }
    return name.unicodeScalars.allSatisfy {
        $0 == "_" || ("a"..."z").contains($0) || ("A"..."Z").contains($0)
            || ("0"..."9").contains($0)
    }
}

/// A row's id: an integer or a string, per the collection's `IDKind`.
public enum RowID: Hashable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral,
    ExpressibleByStringLiteral, Codable
{
    case int(Int64)
    case string(String)

    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(stringLiteral value: String) { self = .string(value) }

    public var description: String {
        switch self {
        case .int(let v): String(v)
        case .string(let s): s
        }
    }

    var value: Value {
        switch self {
        case .int(let v): .integer(v)
        case .string(let s): .text(s)
        }
    }

    var kind: IDKind {
        switch self {
        case .int: .integer
        case .string: .string
        }
    }
}

/// A row read back: its id and the requested columns.
public struct Row: Sendable, Equatable, ColumnValues {
    public var id: RowID
    public var values: [String: Value]
    /// The stored vector, when it was asked for.
    public var vector: [Float]?
}

/// A handle on a collection of a store. Cheap to copy; valid while the collection exists.
public struct CollectionRef: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    let number: Int64
    public var description: String { name }
}

/// What `describe` and `collections()` report.
public struct CollectionInfo: Sendable, Equatable {
    public var name: String
    public var schema: Schema
    public var rows: Int
}
