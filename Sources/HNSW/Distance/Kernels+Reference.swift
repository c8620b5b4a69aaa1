// Scalar reference kernels: the definition the fast kernels are tested against. Not used on any hot path.

/// Squared Euclidean distance, one element at a time in Double. - Complexity: O(n).
package func referenceL2Squared(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "reference kernels need equal counts")
    var sum = 0.0
    for i in a.indices {
        let d = Double(a[i]) - Double(b[i])
        sum += d * d
    }
    return Float(sum)
}

/// Negated dot product, one element at a time in Double. - Complexity: O(n).
package func referenceNegativeDot(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "reference kernels need equal counts")
    var sum = 0.0
    for i in a.indices { sum += Double(a[i]) * Double(b[i]) }
    return Float(-sum)
}
