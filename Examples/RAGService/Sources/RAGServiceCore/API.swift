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

/// `POST /v1/collections/{c}/search`: a vector, a text, or both (hybrid).
struct SearchRequest: Decodable, Sendable {
    var vector: [Float]?
    var vector_base64: String?
    var text: String?
    var k: Int?
    var filter: String?
    var returning: [String]?
    var explain: Bool?
    /// `rrf`, `rrf:K` or `weighted:W` (hybrid only).
    var fusion: String?
    var recall_target: Double?
}

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
