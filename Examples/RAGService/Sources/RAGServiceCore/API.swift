import HybridStore

/// `PUT /v1/collections/{c}/rows`
struct UpsertRequest: Decodable, Sendable {
    struct Row: Decodable, Sendable {
        var id: JSONRowID
        var vector: [Float]?
        var vector_base64: String?
        var values: [String: JSONValue]?
    }
    var rows: [Row]
}

struct UpsertResponse: Encodable, Sendable {
    var upserted: Int
}

// `SearchRequest` is in SearchRequestReader.swift, beside its reader.

struct SearchResponse: Encodable, Sendable {
    struct Hit: Encodable, Sendable {
        var id: JSONRowID
        var distance: Float?
        var score: Double?
        var values: [String: JSONValue]
    }
    var hits: [Hit]
    var explain: String?
}

/// The body of every error response.
struct ErrorBody: Encodable, Sendable {
    struct Detail: Encodable, Sendable {
        var code: String
        var message: String
        var context: [String: String]
    }
    var error: Detail
}
