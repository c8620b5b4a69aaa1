import CKernels
import Foundation
import HNSW
import QueryPlanner

/// Pointers parallel workers share: read-only vectors and centres, and an output each worker writes at its
/// own indices only.
@unsafe struct KMeansShared: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): the inputs are not written while workers run; `out` is written at
    // disjoint indices per worker; all of it outlives `inParallel`.
    let space: UnsafePointer<Float>
    let centres: UnsafePointer<Float>
    var groups: UnsafePointer<Int32>? = nil
    let out: UnsafeMutablePointer<Int32>
}

/// Runs `body` over `0..<count` in chunks on all cores (in place when there is little to do).
/// What the cold step's workers share: the work function and one result slot each.
@unsafe struct ColdWork: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): `run` reads only state that is immutable while the workers run; worker w
    // writes only `out[w]`.
    let run: (Int) -> ColdWorkerResult
    let out: UnsafeMutableBufferPointer<ColdWorkerResult>
}

/// One cold-step worker's k best, or the error that stopped it.
struct ColdWorkerResult {
    var best: [(row: Int64, distance: Float)] = []
    var error: HybridStoreError?
}

func inParallel(_ count: Int, _ body: @Sendable (Range<Int>) -> Void) {
    let chunks = count >= 4096 ? max(1, cores) * 4 : 1
    if chunks == 1 { return body(0..<count) }
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        body((chunk * count / chunks)..<((chunk + 1) * count / chunks))
    }
}

/// What the k-means assignment workers share.
@unsafe struct AssignWork: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): read-only inputs, and `out`, written at disjoint indices per worker.
    let space: UnsafePointer<Float>
    let centres: UnsafePointer<Float>
    let members: UnsafeBufferPointer<Int>
    let out: UnsafeMutableBufferPointer<Int>
}
