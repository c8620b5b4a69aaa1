import HTTPTypes
import HybridStore
import Hummingbird

/// What a request can fail with, and the HTTP status each maps to.
enum ServiceError: Error, Sendable {
    case unauthorized(String)
    case badRequest(String)
    case tooLarge(String)
    case store(HybridStoreError)

    var status: HTTPResponse.Status {
        switch self {
        case .unauthorized: .unauthorized
        case .badRequest: .badRequest
        case .tooLarge: .contentTooLarge
        case .store(let e): Self.status(of: e.code)
        }
    }

    /// The store's error codes as HTTP statuses.
    static func status(of code: HybridStoreError.Code) -> HTTPResponse.Status {
        switch code {
        case .unknownCollection, .notFound, .unknownTenant: .notFound
        case .quotaExceeded: .tooManyRequests
        case .wrongTenant: .forbidden
        case .dimensionMismatch, .nonFiniteVector, .unknownColumn, .typeMismatch, .missingValue, .duplicateID,
            .invalidArgument, .invalidFilter, .invalidSchema:
            .badRequest
        case .readOnly: .methodNotAllowed
        case .storeLocked: .serviceUnavailable
        default: .internalServerError
        }
    }

    var body: ErrorBody {
        switch self {
        case .unauthorized(let m): ErrorBody(error: .init(code: "unauthorized", message: m, context: [:]))
        case .badRequest(let m): ErrorBody(error: .init(code: "badRequest", message: m, context: [:]))
        case .tooLarge(let m): ErrorBody(error: .init(code: "tooLarge", message: m, context: [:]))
        case .store(let e): ErrorBody(error: .init(code: e.code.description, message: e.message, context: e.context))
        }
    }
}

/// A decoding error as one line a client can act on: where in the body (`rows[2].values`) and what.
func describe(_ error: DecodingError) -> String {
    func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let i = key.intValue { text += "[\(i)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text
    }
    func at(_ context: DecodingError.Context) -> String {
        context.codingPath.isEmpty ? "" : "`\(path(context.codingPath))`: "
    }
    switch error {
    case .keyNotFound(let key, let context): return "missing member `\(path(context.codingPath + [key]))`"
    case .valueNotFound(_, let context): return "\(at(context))a value is required"
    case .typeMismatch(_, let context): return "\(at(context))\(context.debugDescription)"
    case .dataCorrupted(let context):
        let underlying = context.underlyingError.map { " (\($0.localizedDescription))" } ?? ""
        return "\(at(context))\(context.debugDescription)\(underlying)"
    @unknown default: return "\(error)"
    }
}
