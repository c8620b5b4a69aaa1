// Fuzz target for `SearchRequestReader` (Sources/RAGServiceCore/SearchRequestReader.swift), compiled with it alone
// by run.sh. Any body: no crash, no hang; and where Foundation's JSONDecoder also reads it, the same request.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSearchRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let ours = try? SearchRequestReader.read(bytes)
    if let ours, let theirs = try? JSONDecoder().decode(SearchRequest.self, from: Data(bytes)) {
        // NaN never parses (the grammar has none), so == on the vectors is exact equality.
        precondition(ours == theirs, "the reader and JSONDecoder disagree: \(ours) against \(theirs)")
    }
    return 0
}
