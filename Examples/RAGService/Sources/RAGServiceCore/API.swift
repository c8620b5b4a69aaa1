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

// Unknown members are refused (`refuseUnknownMembers`): a misspelt `values` would store rows without their values.
extension UpsertRequest {
    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, known: ["rows"])
        rows = try decoder.container(keyedBy: MemberName.self).decode(
            [Row].self, forKey: MemberName(stringValue: "rows"))
    }
}

extension UpsertRequest.Row {
    private enum Members: String, CodingKey, CaseIterable { case id, vector, vector_base64, values }

    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, known: Set(Members.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: Members.self)
        id = try c.decode(JSONRowID.self, forKey: .id)
        vector = try c.decodeIfPresent([Float].self, forKey: .vector)
        vector_base64 = try c.decodeIfPresent(String.self, forKey: .vector_base64)
        values = try c.decodeIfPresent([String: JSONValue].self, forKey: .values)
    }
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
