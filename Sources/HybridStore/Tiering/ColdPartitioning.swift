// How rows moving to the cold tier are grouped into blocks of similar vectors: a two-level k-means, each
// block's centroid and radius.

import CKernels
import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// Centroid (mean) and radius (largest Euclidean distance to it) of some vectors of `space`.
    func centre(of members: [Int], in space: [Float], dim: Int) -> (centroid: [Float], radius: Float) {
        var centroid = [Float](repeating: 0, count: dim)
        for i in members { for d in 0..<dim { centroid[d] += space[i * dim + d] } }
        for d in 0..<dim { centroid[d] /= Float(max(members.count, 1)) }
        let l2 = DistanceKernel(metric: .l2)
        var radius: Float = 0
        unsafe space.withUnsafeBufferPointer { v in
            unsafe centroid.withUnsafeBufferPointer { c in
                for i in members {
                    radius = unsafe max(radius, l2(v.baseAddress! + i * dim, c.baseAddress!, dim).squareRoot())
                }
            }
        }
        return (centroid, radius)
    }

    /// Groups `count` vectors of `space` into blocks of about `coldBlockRows` similar ones: k-means into
    /// groups of ~`coldGroupRows`, each group into leaves, then a few rounds of refinement across group
    /// borders (each vector may move to any leaf of its `coldRefineGroups` nearest groups: a two-level
    /// k-means alone leaves vectors near a border in the wrong leaf, which cost points of recall at the same
    /// number of rows read); a leaf over twice the size is split again. Each block's
    /// members are in ascending order (row numbers delta-code best that way).
    func partition(_ space: [Float], count: Int, dim: Int) -> [[Int]] {
        let target = Self.coldBlockRows
        let groups = kMeans(
            space, members: Array(0..<count), parts: (count + Self.coldGroupRows - 1) / Self.coldGroupRows, dim: dim)
        var leaves: [[Int]] = []
        var leafGroup: [Int] = []
        for (g, members) in groups.enumerated() {
            for leaf in kMeans(space, members: members, parts: (members.count + target - 1) / target, dim: dim) {
                leaves.append(leaf)
                leafGroup.append(g)
            }
        }
        if groups.count > 1 {
            let near = min(Self.coldRefineGroups, groups.count)
            let groupCentres = groups.flatMap { means(of: [$0], in: space, dim: dim) }
            var leafCentres = means(of: leaves, in: space, dim: dim)
            var leavesOfGroup = [[Int32]](repeating: [], count: groups.count)
            for (l, g) in leafGroup.enumerated() { leavesOfGroup[g].append(Int32(l)) }
            // Each vector's nearest groups, then its candidate leaves (those groups' leaves), once.
            let nearest = nearestCentres(space, count: count, centres: groupCentres, take: near, dim: dim)
            var assignment = [Int32](repeating: 0, count: count)
            for _ in 0..<Self.coldRefineRounds {
                assignment = nearestLeaf(
                    space, count: count, leafCentres: leafCentres, nearestGroups: nearest,
                    near: near, leavesOfGroup: leavesOfGroup, dim: dim)
                var members = [[Int]](repeating: [], count: leaves.count)
                for i in 0..<count { members[Int(assignment[i])].append(i) }
                let fresh = means(of: members, in: space, dim: dim)
                for l in 0..<leaves.count where !members[l].isEmpty {  // an emptied leaf keeps its centre
                    for d in 0..<dim { leafCentres[l * dim + d] = fresh[l * dim + d] }
                }
                leaves = members
            }
        }
        var pending = leaves.filter { !$0.isEmpty }
        leaves = []
        while let leaf = pending.popLast() {
            if leaf.count > 2 * target {
                let halves = kMeans(space, members: leaf, parts: 2, dim: dim)
                if halves.count == 2 {
                    pending += halves
                } else {  // identical vectors: cut by position
                    pending += [Array(leaf[..<(leaf.count / 2)]), Array(leaf[(leaf.count / 2)...])]
                }
            } else {
                leaves.append(leaf.sorted())
            }
        }
        return leaves.sorted { $0[0] < $1[0] }
    }
    static let coldRefineGroups = 6
    static let coldRefineRounds = 4

    /// The mean of each group of vectors (zeros for an empty group), row-major.
    private func means(of groups: [[Int]], in space: [Float], dim: Int) -> [Float] {
        var out = [Float](repeating: 0, count: groups.count * dim)
        for (g, members) in groups.enumerated() where !members.isEmpty {
            for i in members { for d in 0..<dim { out[g * dim + d] += space[i * dim + d] } }
            for d in 0..<dim { out[g * dim + d] /= Float(members.count) }
        }
        return out
    }

    /// For each of `count` vectors, the indices of its `take` nearest centres (nearest first), flattened.
    private func nearestCentres(_ space: [Float], count: Int, centres: [Float], take: Int, dim: Int) -> [Int32] {
        var out = [Int32](repeating: 0, count: count * take)
        let parts = centres.count / dim
        let l2 = DistanceKernel(metric: .l2)
        unsafe space.withUnsafeBufferPointer { v in
            unsafe centres.withUnsafeBufferPointer { c in
                unsafe out.withUnsafeMutableBufferPointer { o in
                    let work = unsafe KMeansShared(space: v.baseAddress!, centres: c.baseAddress!, out: o.baseAddress!)
                    inParallel(count) { range in
                        var best = [(Float, Int32)](repeating: (.infinity, 0), count: take)
                        for i in range {
                            for t in 0..<take { best[t] = (.infinity, 0) }
                            let x = unsafe work.space + i * dim
                            for p in 0..<parts {
                                let d = unsafe l2(x, work.centres + p * dim, dim)
                                guard d < best[take - 1].0 else { continue }
                                var t = take - 1
                                while t > 0 && best[t - 1].0 > d { best[t] = best[t - 1]; t -= 1 }
                                best[t] = (d, Int32(p))
                            }
                            // SAFETY: rows of `out` are disjoint per i.
                            for t in 0..<take { unsafe work.out[i * take + t] = best[t].1 }
                        }
                    }
                }
            }
        }
        return out
    }

    /// For each vector, the nearest leaf among those of its nearest groups.
    private func nearestLeaf(
        _ space: [Float], count: Int, leafCentres: [Float], nearestGroups: [Int32], near: Int,
        leavesOfGroup: [[Int32]], dim: Int
    ) -> [Int32] {
        var out = [Int32](repeating: 0, count: count)
        let l2 = DistanceKernel(metric: .l2)
        unsafe space.withUnsafeBufferPointer { v in
            unsafe leafCentres.withUnsafeBufferPointer { c in
                unsafe nearestGroups.withUnsafeBufferPointer { groups in
                    unsafe out.withUnsafeMutableBufferPointer { o in
                        let work = unsafe KMeansShared(
                            space: v.baseAddress!, centres: c.baseAddress!, groups: groups.baseAddress!,
                            out: o.baseAddress!)
                        inParallel(count) { range in
                            for i in range {
                                let x = unsafe work.space + i * dim
                                var best: Int32 = 0, bestDistance = Float.infinity
                                for t in 0..<near {
                                    for leaf in unsafe leavesOfGroup[Int(work.groups![i * near + t])] {
                                        let d = unsafe l2(x, work.centres + Int(leaf) * dim, dim)
                                        if d < bestDistance { bestDistance = d; best = leaf }
                                    }
                                }
                                // SAFETY: one slot of `out` per i.
                                unsafe work.out[i] = best
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// k-means (Lloyd, 6 rounds, centres seeded from evenly spaced members) of `members` into at most
    /// `parts` non-empty groups. Assignment runs on all cores when there is enough of it.
    private func kMeans(_ space: [Float], members: [Int], parts: Int, dim: Int) -> [[Int]] {
        guard parts > 1, members.count > parts else { return members.isEmpty ? [] : [members] }
        var centres: [Float] = []
        centres.reserveCapacity(parts * dim)
        for p in 0..<parts {
            let seed = members[p * members.count / parts]
            centres.append(contentsOf: space[seed * dim..<(seed + 1) * dim])
        }
        let l2 = DistanceKernel(metric: .l2)
        var assignment = [Int](repeating: 0, count: members.count)
        let chunks = members.count * parts * dim >= 1 << 22 ? max(1, cores) * 4 : 1
        unsafe space.withUnsafeBufferPointer { v in
            for _ in 0..<6 {
                unsafe centres.withUnsafeBufferPointer { c in
                    unsafe members.withUnsafeBufferPointer { m in
                        unsafe assignment.withUnsafeMutableBufferPointer { out in
                            // SAFETY: each chunk writes only its own range of `out`; all buffers outlive the call.
                            let work = unsafe AssignWork(
                                space: v.baseAddress!, centres: c.baseAddress!, members: m, out: out)
                            let body = { @Sendable (chunk: Int) in
                                let count = unsafe work.members.count
                                for i in (chunk * count / chunks)..<((chunk + 1) * count / chunks) {
                                    var best = 0, bestDistance = Float.infinity
                                    let x = unsafe work.space + work.members[i] * dim
                                    for p in 0..<parts {
                                        let d = unsafe l2(x, work.centres + p * dim, dim)
                                        if d < bestDistance { bestDistance = d; best = p }
                                    }
                                    unsafe work.out[i] = best
                                }
                            }
                            if chunks == 1 {
                                body(0)
                            } else {
                                DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
                            }
                        }
                    }
                }
                var sums = [Float](repeating: 0, count: parts * dim)
                var sizes = [Int](repeating: 0, count: parts)
                for (m, i) in members.enumerated() {
                    let p = assignment[m]
                    sizes[p] += 1
                    for d in 0..<dim { unsafe sums[p * dim + d] += v[i * dim + d] }
                }
                for p in 0..<parts where sizes[p] > 0 {
                    for d in 0..<dim { centres[p * dim + d] = sums[p * dim + d] / Float(sizes[p]) }
                }
            }
        }
        var groups = [[Int]](repeating: [], count: parts)
        for (m, i) in members.enumerated() { groups[assignment[m]].append(i) }
        return groups.filter { !$0.isEmpty }
    }
}
