/// What went wrong in the HNSW index. Codes are a struct over a private enum so new ones can be added
/// without breaking callers that switch over the existing ones.
public struct HNSWError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case dimensionMismatch, nonFiniteVector, duplicateLabel, unknownLabel, invalidParameter
            case corruptFile, foreignFile, newerFormat, io
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }
        /// A vector's length differs from the index's dimensions.
        public static let dimensionMismatch = Code(.dimensionMismatch)
        /// A vector holds NaN or an infinity.
        public static let nonFiniteVector = Code(.nonFiniteVector)
        /// `insert` was given a label the index already holds.
        public static let duplicateLabel = Code(.duplicateLabel)
        /// A label the index does not hold.
        public static let unknownLabel = Code(.unknownLabel)
        /// A parameter outside its documented range.
        public static let invalidParameter = Code(.invalidParameter)
        /// A snapshot that is truncated, bit-flipped or inconsistent.
        public static let corruptFile = Code(.corruptFile)
        /// A file that is not an HNSW snapshot at all (wrong magic number).
        public static let foreignFile = Code(.foreignFile)
        /// A snapshot written by a newer format version.
        public static let newerFormat = Code(.newerFormat)
        /// Reading or writing a file failed.
        public static let io = Code(.io)
        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
