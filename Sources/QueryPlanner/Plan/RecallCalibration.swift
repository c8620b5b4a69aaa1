import Foundation

/// Learns, from a sample of a collection's own queries, how much search effort its data needs.
///
/// The planner's effort table (0.95 → ef 80 at k = 10, less under a filter) was fitted to one dataset; on
/// another the same ef can under- or over-deliver (384-d cosine: 0.985 where 0.95 was asked; 64-d clustered
/// data with 2M rows under a 5 % filter: 0.92). The engine checks a sample of graph queries against an exact
/// scan in the background and records each one's recall here; per selectivity bucket, a scale on the
/// effort moves until the mean measured recall sits just above the target. Checks that also re-search
/// their query at several efforts build the bucket's recall curve over time, and the scale is then read off
/// it (the smallest effort that meets the target) instead of stepping towards it.
///
/// Deterministic given the same recorded samples: no clocks, no randomness.
package struct RecallCalibration: Sendable, Equatable, Codable {
    /// Effort scale per bucket (1 = the table's effort).
    public private(set) var scales: [Double]
    /// Recall samples per bucket taken at the current scale.
    private var window: [[Double]]
    /// Per bucket: the recall measured at each effort scale (bins of an eighth of an octave, by
    /// `bin(of:)`), accumulated over windows (halved when a bin grows past `binMemory` samples, so old data
    /// fades): the bucket's recall curve, from checks that re-searched their query at several efforts.
    private var grid: [[Int: Cell]]
    struct Cell: Sendable, Equatable, Codable {
        var n = 0.0, sum = 0.0, squares = 0.0
        var mean: Double { sum / max(n, 1) }
        var error: Double { n < 2 ? 1 : (max(0, squares / n - mean * mean) / (n - 1)).squareRoot() }
    }
    /// Samples recorded per bucket, ever (evidence that the bucket's scale was measured, not assumed).
    public private(set) var samples: [Int]
    /// Recall curves measured on the collection's own data when its index was built or had changed much
    /// (`adopt(_:)`, pooled so recall rises with effort); nil before the first. Stored with the calibration, so
    /// a fresh process plans with them.
    public private(set) var built: BuildCalibration?
    /// The cold step's effort scale read off the build-time curve over both tiers (nil: the store's rule as
    /// it is, uncalibrated). Multiplies `QueryOptions.coldEffort`.
    public private(set) var coldScale: Double?
    /// The same for filtered queries, per curve of `BuildCalibration.coldFiltered` (in its order), read off the
    /// build-time curves under a filter; a query without one takes `coldScale`.
    public private(set) var coldFilteredScales: [Double] = []
    /// Recall within this of a curve's largest measured effort counts as levelled off.
    package static let plateau = 0.002
    /// Samples that decide a step.
    public static let windowSize = 64
    /// The hot efforts' range, unfiltered. ⅛ of the table's effort is ef = k at the default target (8k), the least
    /// a search takes; with ¼ the floor, clustered anisotropic data (`hybrid-bench calibration --hard mixture-96`)
    /// was served at 0.98–0.99 where the curve allowed less.
    public static let minScale = 0.125, maxScale = 16.0
    /// The floor under a filter stays at ¼: a filter that follows the data needs more effort than the random
    /// filters the curves are measured with, and below ¼ a 14 % filter that left most queries' own clusters
    /// (a cosine mixture, 20,000 × 96) went to a filtered graph at recall 0.855 where 0.99 was expected; at ¼ the
    /// planner answers it exactly. A filter known to be drawn at random is planned below it (`bucketScale`).
    public static let minFilteredScale = 0.25

    /// The least effort scale of a bucket (`minScale` unfiltered, `minFilteredScale` under a filter).
    static func floor(bucket: Int) -> Double { bucket == 0 ? minScale : minFilteredScale }
    /// The cold step under a filter opens more blocks the sparser the filter (`Planner.coldBlocks`), more than it
    /// needs on most data: its curves reach lower.
    public static let minColdFilteredScale = 1.0 / 16
    /// The cold step's scale may rise past `maxScale`, the largest effort its calibration runs, where the curve's
    /// points above it model larger efforts (`HybridStore.beyondMeasured`); each stops where the step may open
    /// every block, far below this.
    public static let maxColdScale = 4096.0
    /// Buckets: 0 no filter; 1 s ≥ 0.5; 2 0.2 ≤ s < 0.5; 3 0.05 ≤ s < 0.2; 4 0.01 ≤ s < 0.05; 5 s < 0.01.
    public static let bucketCount = 6
    /// Efforts, relative to the current scale, at which a recall check may also measure the same query, so
    /// one window shows the recall curve around the current effort and the scale can jump to where the
    /// target is met instead of creeping towards it.
    public static let curveMultipliers: [Double] = [0.4, 0.55, 0.7, 0.85, 1, 1.2, 1.45, 2]
    static let binsPerOctave = 8.0
    static let binMemory = 1024.0

    static func bin(of scale: Double) -> Int { Int((log2(scale) * binsPerOctave).rounded()) }
    static func scale(of bin: Int) -> Double { exp2(Double(bin) / binsPerOctave) }

    public init() {
        scales = Array(repeating: 1, count: Self.bucketCount)
        window = Array(repeating: [], count: Self.bucketCount)
        grid = Array(repeating: [:], count: Self.bucketCount)
        samples = Array(repeating: 0, count: Self.bucketCount)
    }

    /// The promise a build-time curve backs: the expected recall of a query drawn like the calibration's meets
    /// the target with this one-sided confidence (z = 1.645: 95 %) given the curve's own uncertainty.
    package static let promiseZ = 1.645
    /// The interval `expected` reports: two-sided 95 % for the mean recall of `promisedQueries` queries (what a
    /// user who measures that many sees: the curve's uncertainty and the sampling of those queries).
    public static let promisedQueries = 100.0
    static let intervalZ = 1.96

    /// The spread of a mean over `promisedQueries` future queries around a curve point measured with
    /// `queries` queries (standard error `error`): both the curve's own uncertainty and the sampling of the
    /// future queries (per-query standard deviation `error · √queries`).
    static func predictionError(error: Double, queries: Int) -> Double {
        let n = Double(max(queries, 2))
        return error * (1 + n / promisedQueries).squareRoot()
    }

    /// Adopts recall curves measured at build time: each measured bucket's scale becomes the smallest at
    /// which the curve's recall meets its target with 95 % confidence (`recall − 1.645 · error ≥ target`),
    /// interpolated in log scale between measured efforts (so the effort lands where the target is met, not a
    /// whole step above it), or the largest measured when none does (`expected` then shows the shortfall).
    /// The curve may lower the effort below the static model's as well as raise it: its queries are the
    /// collection's own rows, each searched for in the graph without it. Online checks go on refining from
    /// there. A curve over both tiers sets `coldScale` the same way.
    /// The curves are kept pooled (monotone), so reading them per query allocates nothing.
    public mutating func adopt(_ calibration: BuildCalibration) {
        var calibration = calibration
        calibration.curves = calibration.curves.mapValues(BuildCalibration.monotone)
        calibration.cold = calibration.cold.map(BuildCalibration.monotone)
        calibration.coldFiltered = calibration.coldFiltered?.map {
            var curve = $0
            curve.points = BuildCalibration.monotone(curve.points)
            return curve
        }
        built = calibration
        coldScale = calibration.cold.map { Self.scale(meeting: calibration.target, on: $0, ceiling: Self.maxColdScale) }
        coldFilteredScales = (calibration.coldFiltered ?? []).map {
            Self.scale(
                meeting: calibration.target, on: $0.points, floor: Self.minColdFilteredScale, ceiling: Self.maxColdScale
            )
        }
        for (bucket, pooled) in calibration.curves where bucket >= 0 && bucket < Self.bucketCount && !pooled.isEmpty {
            scales[bucket] = Self.scale(meeting: calibration.target, on: pooled, floor: Self.floor(bucket: bucket))
            window[bucket] = []
            grid[bucket] = [:]
            samples[bucket] = max(samples[bucket], Self.windowSize)
        }
    }

    /// The smallest scale at which `points` (a pooled curve) meets `target` as `adopt(_:)` asks, interpolated
    /// in log scale. When none does: where the curve levels off (the smallest scale within `plateau` of the
    /// largest's recall), since more effort past it buys nothing measurable.
    public static func scale(
        meeting target: Double, on points: [BuildCalibration.Point], floor: Double = minScale,
        ceiling: Double = maxScale
    ) -> Double {
        guard let last = points.last else { return 1 }
        let lower = points.map { $0.recall - promiseZ * $0.error }
        var chosen = points.first { $0.recall >= last.recall - plateau }?.scale ?? last.scale
        if let i = lower.firstIndex(where: { $0 >= target }) {
            chosen = points[i].scale
            if i > 0, lower[i] > lower[i - 1] {
                let t = (target - lower[i - 1]) / (lower[i] - lower[i - 1])
                chosen = exp2(log2(points[i - 1].scale) + t * (log2(points[i].scale) - log2(points[i - 1].scale)))
            }
        }
        return min(ceiling, max(floor, chosen))
    }

    /// The recall the build-time curve expects of the bucket's current scale (interpolated in log scale), its
    /// standard error, and the half-width of a 95 % interval for the mean recall of `promisedQueries` queries;
    /// nil when the bucket has no build-time curve.
    ///
    /// `randomFilter`: the filter is known to be drawn independently of the vectors (`bucketScale`).
    public func expected(
        selectivity: Double, filtered: Bool, randomFilter: Bool = false
    ) -> (recall: Double, error: Double, interval: Double)? {
        guard let built else { return nil }
        if let (a, b, t) = blend(selectivity: selectivity, filtered: filtered),
            let pa = built.curves[a], let pb = built.curves[b]
        {
            let scale = blendedScale(a, b, t, randomFilter: randomFilter)
            guard let ra = Self.read(pa, at: scale, queries: built.queries),
                let rb = Self.read(pb, at: scale, queries: built.queries)
            else { return nil }
            return ((1 - t) * ra.recall + t * rb.recall, max(ra.error, rb.error), max(ra.interval, rb.interval))
        }
        let bucket = Self.bucket(selectivity: selectivity, filtered: filtered)
        guard let points = built.curves[bucket] else { return nil }
        return Self.read(points, at: bucketScale(bucket, randomFilter: randomFilter), queries: built.queries)
    }

    /// A bucket's effort scale. For a filter known to be drawn independently of the vectors (`randomFilter`: its
    /// rows link outside it as often as at random, `HNSWIndex.linkSpread`), where the bucket's scale sits at the
    /// filtered floor (`minFilteredScale`), the build-time curve's own scale down to `minScale`: the floor guards
    /// against filters that follow the data, which the curves, measured under random filters, do not speak for;
    /// a filter known not to need it is planned on its curve. (Clustered 96-d data, all hot, random 50 % filters:
    /// 0.978–0.995 where 0.95 was asked, at the floor.)
    private func bucketScale(_ bucket: Int, randomFilter: Bool) -> Double {
        guard randomFilter, bucket > 0, scales[bucket] <= Self.minFilteredScale, let built,
            let points = built.curves[bucket], points != built.curves[0]
        else { return scales[bucket] }
        return min(scales[bucket], Self.scale(meeting: built.target, on: points, floor: Self.minScale))
    }

    /// The selectivity each bucket's build-time curve is measured at (its filter matches that share of the rows
    /// at random; bucket 0, unfiltered, is all of them), indexed by bucket, falling. Bucket 5 (under 1 %) has no
    /// build-time curve.
    public static let representativeSelectivity: [Double] = [1, 0.6, 0.35, 0.1, 0.025]

    /// A filtered query between two buckets' representative selectivities, both with curves measured at build
    /// time (not borrowed from the unfiltered one, as a bucket the planner answers exactly has): the buckets
    /// (`a` the wider) and how far towards `b` the selectivity lies, in log selectivity. Nil elsewhere (the
    /// bucket's own scale holds).
    ///
    /// A bucket's curve speaks for its representative selectivity; read at the bucket's edge it errs (gaussian
    /// 128-d, 200k rows: a 50 % filter estimated at 0.4999 took the 35 % curve's effort and got 0.934, where the
    /// 60 % curve promised 0.935 at 16× the effort). Between two measured selectivities the effort scale and the
    /// expected recall are interpolated instead.
    func blend(selectivity s: Double, filtered: Bool) -> (a: Int, b: Int, t: Double)? {
        guard filtered, let built, s > 0 else { return nil }
        let representative = Self.representativeSelectivity
        for a in 0..<representative.count - 1 where s <= representative[a] && s >= representative[a + 1] {
            guard let pa = built.curves[a], let pb = built.curves[a + 1],
                a == 0 || pa != built.curves[0], pb != built.curves[0]
            else { return nil }
            return (a, a + 1, log(representative[a] / s) / log(representative[a] / representative[a + 1]))
        }
        return nil
    }

    /// The effort scale between buckets `a` and `b`, `t` of the way in log scale.
    private func blendedScale(_ a: Int, _ b: Int, _ t: Double, randomFilter: Bool = false) -> Double {
        exp2(
            (1 - t) * log2(bucketScale(a, randomFilter: randomFilter)) + t
                * log2(bucketScale(b, randomFilter: randomFilter)))
    }

    /// A pooled curve's recall at `scale` (interpolated in log scale), its standard error, and the 95 %
    /// interval's half-width for the mean of `promisedQueries` queries.
    package static func read(
        _ points: [BuildCalibration.Point], at scale: Double, queries: Int
    )
        -> (recall: Double, error: Double, interval: Double)?
    {
        guard let first = points.first else { return nil }
        func result(_ recall: Double, _ error: Double) -> (recall: Double, error: Double, interval: Double) {
            (recall, error, intervalZ * predictionError(error: error, queries: queries))
        }
        let x = log2(scale)
        if x <= log2(first.scale) { return result(first.recall, first.error) }
        for (a, b) in zip(points, points.dropFirst()) where x <= log2(b.scale) {
            let t = (x - log2(a.scale)) / max(log2(b.scale) - log2(a.scale), 1e-9)
            return result(a.recall + t * (b.recall - a.recall), max(a.error, b.error))
        }
        return result(points.last!.recall, points.last!.error)
    }

    /// What the curve over both tiers expects at `coldScale` (as `expected(selectivity:filtered:)` does for
    /// the hot tier alone); nil without one.
    public func expectedOverBothTiers() -> (recall: Double, error: Double, interval: Double)? {
        guard let built, let points = built.cold, let coldScale else { return nil }
        return Self.read(points, at: coldScale, queries: built.coldQueries ?? built.queries)
    }

    /// What the curve over both tiers expects with an exact cold step (`BuildCalibration.coldExact`); nil without
    /// one.
    public func exactOverBothTiers() -> ExactExpectation? {
        guard let built, let exact = built.coldExact else { return nil }
        return Self.expectation(exact, queries: built.coldQueries ?? built.queries)
    }

    /// `exact` with the 95 % interval for 100 queries' mean around it, from a curve of `queries` queries.
    static func expectation(_ exact: BuildCalibration.Exact, queries: Int) -> ExactExpectation {
        (exact.recall, exact.error, intervalZ * predictionError(error: exact.error, queries: queries))
    }

    /// The cold step's effort scale for a filtered query whose filter leaves `selectivity` of the cold rows, and
    /// what the curve it comes from expects there (over both tiers, the hot rows answered exactly); nil where
    /// there is no curve under a filter. The curve is one measured the way this query's cold step will go
    /// (`Planner.coldRanksByCode`: ranking every matching row by code, or picking blocks by centroid, whose
    /// efforts mean different work) in its selectivity bucket; else the nearest selectivity measured that way;
    /// else its bucket's. (A 50 % filter ranks by code on a tier where a 60 % one picks by centroid, and the
    /// centroid curve's effort over-served it: recall 1.000 where 0.95 was asked; the 35 % curve's, measured by
    /// code, under-served it: 0.925–0.948 on the Gaussian sets.)
    ///
    /// Between two selectivities measured the query's way, the two curves are blended, weighted by how near each
    /// is in log selectivity, and the scale is the blend's (where it meets the target with confidence): a step
    /// ranking by code needs more effort the more rows match, so a 49.9 % filter (bucket 2) took the 35 % curve's
    /// scale and reached 0.932 (gaussian-128, inner product, 80 % cold, 1,000 queries) where 0.961 was expected.
    ///
    /// `target`: the recall the cold step is to reach with the hot rows exact, where it is not the calibration's
    /// (an approximate hot step's misses leave the cold step less room: `Planner.planCold`).
    ///
    /// `spread`: how the filter's cold rows spread over the blocks (`ColdTier.spread`; nil: unknown, taken as
    /// drawn at random). A filter that follows the data gathers its rows in the blocks of a few regions, often
    /// far from the query, whose rows lie at much the same distance from it; the codes' estimates then misorder
    /// them, and the cold step needs more effort than under a filter drawn at random. Between the curves of the
    /// two, the curve is blended by where `spread` lies in log spread (the data-following one measured at its own
    /// spread, the query's way, in its bucket or on either side of its selectivity: not borrowed from afar; none
    /// is measured at 20 % and wider, `HybridStore.followingTheDataBelow`). (Clustered anisotropic 96-d cosine
    /// data, 80 % cold, `grp = 3` matching 7 of 50 clusters: 0.914 with the curve drawn at random, which expected
    /// 0.988.)
    ///
    /// Also the expected recall's standard error, and what the curve (or the blend) expects with an exact cold
    /// step, where recorded.
    ///
    /// `followed`: whether a curve under a filter following the data weighed in.
    public func coldFiltered(
        selectivity: Double, ranksByCode: Bool, target: Double? = nil, spread: Double? = nil
    ) -> (
        scale: Double, recall: Double, interval: Double, error: Double, exact: ExactExpectation?, followed: Bool
    )? {
        guard let built, let curves = built.coldFiltered, curves.count == coldFilteredScales.count else { return nil }
        let queries = built.coldQueries ?? built.queries
        let measured = curves.indices.filter { !curves[$0].points.isEmpty }
        guard
            var (points, exact, _) = Self.filteredCurve(
                curves, measured.filter { curves[$0].spread == nil }, selectivity: selectivity,
                ranksByCode: ranksByCode, queries: queries)
        else { return nil }
        var followed = false
        let followingTheData = measured.filter { curves[$0].spread != nil && curves[$0].ranksByCode == ranksByCode }
        if let spread, spread < 1,
            let other = Self.filteredCurve(
                curves, followingTheData, selectivity: selectivity, ranksByCode: ranksByCode, queries: queries,
                borrowing: false),
            let far = other.spread, far < 1
        {
            let t = min(1, log(max(spread, 1e-6)) / log(far))
            guard let blended = Self.blend(points, other.points, t, queries: queries) else { return nil }
            points = blended
            exact = Self.blend(exact, other.exact, t)
            followed = true
        }
        let scale = Self.scale(
            meeting: target ?? built.target, on: points, floor: Self.minColdFilteredScale, ceiling: Self.maxColdScale)
        guard let expected = Self.read(points, at: scale, queries: queries) else { return nil }
        return (
            scale, expected.recall, expected.interval, expected.error,
            exact.map { Self.expectation($0, queries: queries) }, followed
        )
    }

    /// The curve, among `candidates` (indices into `curves`), for a cold step at `selectivity` taking the way
    /// `ranksByCode`: the two measured that way on either side blended, one measured that way in its bucket, or
    /// (`borrowing`) the nearest selectivity measured that way, or its bucket's (as `coldFiltered` tells); with
    /// what it expects of an exact cold step, and its filter's spread (blended in log spread).
    private static func filteredCurve(
        _ curves: [BuildCalibration.ColdFilteredCurve], _ candidates: [Int], selectivity: Double, ranksByCode: Bool,
        queries: Int, borrowing: Bool = true
    ) -> (points: [BuildCalibration.Point], exact: BuildCalibration.Exact?, spread: Double?)? {
        let bucket = Self.bucket(selectivity: selectivity, filtered: true)
        func distance(_ i: Int) -> Double { abs(log(curves[i].selectivity) - log(max(selectivity, 1e-6))) }
        let sameWay = candidates.filter { curves[$0].ranksByCode == ranksByCode }
        if !sameWay.contains(where: { distance($0) < 1e-9 }),
            let below = sameWay.filter({ curves[$0].selectivity < selectivity })
                .max(by: { curves[$0].selectivity < curves[$1].selectivity }),
            let above = sameWay.filter({ curves[$0].selectivity > selectivity })
                .min(by: { curves[$0].selectivity < curves[$1].selectivity })
        {
            let (lo, hi) = (curves[below], curves[above])
            // The weight of the sparser curve: 0 at the denser one's selectivity, 1 at its own.
            let t = log(hi.selectivity / selectivity) / log(hi.selectivity / lo.selectivity)
            guard let points = blend(hi.points, lo.points, t, queries: queries) else { return nil }
            let spread = hi.spread.flatMap { h in lo.spread.map { exp((1 - t) * log(h) + t * log($0)) } }
            return (points, blend(hi.exact, lo.exact, t), spread)
        }
        let inBucket = candidates.first { curves[$0].bucket == bucket && curves[$0].ranksByCode == ranksByCode }
        guard borrowing else { return inBucket.map { (curves[$0].points, curves[$0].exact, curves[$0].spread) } }
        let chosen =
            inBucket ?? sameWay.min { distance($0) < distance($1) } ?? candidates.first { curves[$0].bucket == bucket }
        return chosen.map { (curves[$0].points, curves[$0].exact, curves[$0].spread) }
    }

    /// Two curves measured on the same queries, weighted 1 − t and t, at every scale either has. (Their blend's
    /// standard error is at most the blend of theirs.) Nil where one has no points.
    private static func blend(
        _ a: [BuildCalibration.Point], _ b: [BuildCalibration.Point], _ t: Double, queries: Int
    ) -> [BuildCalibration.Point]? {
        var blended: [BuildCalibration.Point] = []
        for scale in Set((a + b).map(\.scale)).sorted() {
            guard let x = read(a, at: scale, queries: queries), let y = read(b, at: scale, queries: queries) else {
                return nil
            }
            blended.append(
                BuildCalibration.Point(
                    scale: scale, recall: (1 - t) * x.recall + t * y.recall, error: (1 - t) * x.error + t * y.error))
        }
        return blended
    }

    /// What two curves expect of an exact cold step, weighted 1 − t and t; nil unless both say.
    private static func blend(
        _ a: BuildCalibration.Exact?, _ b: BuildCalibration.Exact?, _ t: Double
    )
        -> BuildCalibration.Exact?
    {
        guard let a, let b else { return nil }
        return .init(recall: (1 - t) * a.recall + t * b.recall, error: (1 - t) * a.error + t * b.error)
    }

    /// What a cold curve expects with an exact cold step: the mean recall, its standard error, and the half-width
    /// of the 95 % interval for 100 queries' mean.
    public typealias ExactExpectation = (recall: Double, error: Double, interval: Double)

    /// Whether a full window of samples has been recorded for the bucket.
    public func isMeasured(selectivity: Double, filtered: Bool) -> Bool {
        samples[Self.bucket(selectivity: selectivity, filtered: filtered)] >= Self.windowSize
    }

    public static func bucket(selectivity s: Double, filtered: Bool) -> Int {
        guard filtered else { return 0 }
        switch s {
        case 0.5...: return 1
        case 0.2...: return 2
        case 0.05...: return 3
        case 0.01...: return 4
        default: return 5
        }
    }

    /// The effort scale for a query at this selectivity: its bucket's, or, between two buckets measured at build
    /// time, interpolated between theirs (`blend(selectivity:filtered:)`).
    /// `randomFilter`: the filter is known to be drawn independently of the vectors (`bucketScale`).
    public func scale(selectivity: Double, filtered: Bool, randomFilter: Bool = false) -> Double {
        if let (a, b, t) = blend(selectivity: selectivity, filtered: filtered) {
            return blendedScale(a, b, t, randomFilter: randomFilter)
        }
        return bucketScale(Self.bucket(selectivity: selectivity, filtered: filtered), randomFilter: randomFilter)
    }

    /// Records the recall@k one query reached at the bucket's current scale. Once a window is full: a mean
    /// below `target` by more than its standard error raises the scale, a mean above `target + slack` by more
    /// than its standard error lowers it, each in proportion to the miss; either way the window starts
    /// afresh. (Per-query recall is noisy — a standard deviation of ~0.07 at 0.95 — so fixed steps on any
    /// dip would ratchet the effort up.) Windows whose checks also measured the recall curve
    /// (`record(curve:…)`) step straight to the smallest multiplier that meets the target instead.
    /// - Returns: whether the scale changed.
    @discardableResult
    public mutating func record(
        recall: Double, selectivity: Double, filtered: Bool, target: Double,
        slack: Double = 0.015
    ) -> Bool {
        let b = Self.bucket(selectivity: selectivity, filtered: filtered)
        window[b].append(recall)
        samples[b] += 1
        guard window[b].count >= Self.windowSize else { return false }
        let (mean, standardError) = Self.meanAndError(window[b])
        window[b].removeAll()
        let old = scales[b]
        switch Self.choose(grid[b], target: target) {
        case .scale(let chosen):
            scales[b] = min(Self.maxScale, max(Self.floor(bucket: b), chosen))
            return scales[b] != old
        case .keep:
            return false
        case .unmeasured:
            break
        }
        let ceiling = min(target + slack, 0.9995)
        if mean + standardError < target {
            scales[b] = min(Self.maxScale, old * (1 + min(1, 3 * (target - mean) + 0.05)))
        } else if mean - standardError > ceiling {
            scales[b] = max(Self.floor(bucket: b), old * max(0.7, 1 - 3 * (mean - ceiling) - 0.03))
        }
        return scales[b] != old
    }

    /// Records one query's recall at each of `curveMultipliers` × the current scale (`recalls[i]` at
    /// multiplier i) into the bucket's recall curve, then its recall at the current scale as
    /// `record(recall:…)` does.
    /// - Precondition: `recalls.count == curveMultipliers.count`.
    @discardableResult
    public mutating func record(curve recalls: [Double], selectivity: Double, filtered: Bool, target: Double) -> Bool {
        precondition(recalls.count == Self.curveMultipliers.count)
        let b = Self.bucket(selectivity: selectivity, filtered: filtered)
        for (m, r) in zip(Self.curveMultipliers, recalls) {
            var cell = grid[b][Self.bin(of: scales[b] * m), default: Cell()]
            if cell.n >= Self.binMemory { cell = Cell(n: cell.n / 2, sum: cell.sum / 2, squares: cell.squares / 2) }
            cell.n += 1
            cell.sum += r
            cell.squares += r * r
            grid[b][Self.bin(of: scales[b] * m)] = cell
        }
        return record(
            recall: recalls[Self.curveMultipliers.firstIndex(of: 1)!], selectivity: selectivity,
            filtered: filtered, target: target)
    }

    enum Decision { case scale(Double), keep, unmeasured }

    /// From a recall curve: the smallest scale whose recall meets the target beyond its standard error, once
    /// the curve is made monotone; when none does but recall still rises with effort, half again the largest
    /// measured; when the curve is flat (more effort does not help, e.g. fewer matches than k), keep the
    /// scale. Bins with under half a window of samples are ignored; unmeasured while fewer than three are
    /// measured.
    ///
    /// Recall cannot fall as effort rises, so a bin that measures below a smaller effort's bin is noise: the
    /// bins are pooled with their neighbours until the means rise (pool-adjacent-violators), and each pooled
    /// block's mean and error come from all its samples. (The rule this replaces refused every bin below one
    /// that dipped under the target; with eight bins around the target one dips by chance in most windows,
    /// and the chosen effort wandered between ef 38 and 68 for the same data.)
    static func choose(_ curve: [Int: Cell], target: Double) -> Decision {
        let measured = curve.filter { $0.value.n * 2 >= Double(windowSize) }.sorted { $0.key < $1.key }
        guard measured.count >= 3 else { return .unmeasured }
        var blocks: [(first: Int, cell: Cell)] = []
        for (key, cell) in measured {
            blocks.append((key, cell))
            while blocks.count >= 2, blocks[blocks.count - 2].cell.mean > blocks[blocks.count - 1].cell.mean {
                let last = blocks.removeLast().cell
                let previous = blocks[blocks.count - 1].cell
                blocks[blocks.count - 1].cell = Cell(
                    n: previous.n + last.n, sum: previous.sum + last.sum,
                    squares: previous.squares + last.squares)
            }
        }
        if let hit = blocks.first(where: { $0.cell.mean - $0.cell.error >= target }) {
            return .scale(scale(of: hit.first))
        }
        let low = measured.first!.value.mean, high = measured.last!.value.mean
        return high > low + 0.005 ? .scale(scale(of: measured.last!.key) * 1.5) : .keep
    }

    /// The mean of `values` and its standard error.
    public static func meanAndError(_ values: [Double]) -> (mean: Double, error: Double) {
        guard !values.isEmpty else { return (0, 0) }
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / max(n - 1, 1)
        return (mean, (variance / n).squareRoot())
    }
}

/// Recall curves a collection measured on its own data: queries drawn from its rows, exact answers by scan,
/// the recall reached at several effort scales per selectivity bucket (see `RecallCalibration.bucket`).
public struct BuildCalibration: Sendable, Equatable, Codable {
    /// Mean recall@k over the bucket's queries at one effort scale, and its standard error.
    public struct Point: Sendable, Equatable, Codable {
        public var scale: Double
        public var recall: Double
        public var error: Double
        public init(scale: Double, recall: Double, error: Double) {
            self.scale = scale
            self.recall = recall
            self.error = error
        }
        /// Past the largest effort a calibration runs: modelled from the blocks its queries' neighbours lie in, not
        /// run (only on cold curves, `HybridStore.beyondMeasured`).
        public var isModelled: Bool { scale > RecallCalibration.maxScale }
    }
    /// Bucket → points in ascending scale.
    public var curves: [Int: [Point]]
    /// Recall over both tiers (the hot tier at its calibrated effort, unfiltered) against the cold step's effort
    /// scale (× the store's probe rule); nil when the collection had no cold rows to measure. Points past
    /// `RecallCalibration.maxScale` (here and in `coldFiltered`) are modelled, not run (`HybridStore.beyondMeasured`).
    public var cold: [Point]?
    /// Recall over both tiers under filters matching a share of the rows at random (the hot rows answered
    /// exactly, so a curve speaks of the cold step) against the cold step's effort scale: one per filtered bucket
    /// at its `coldSelectivity`, and one more where part of a bucket's range takes the other way
    /// (`Planner.coldRanksByCode`); and, where `spread` is set, under a filter that follows the data (the cold
    /// rows of a few regions, none hot); nil when not measured.
    public var coldFiltered: [ColdFilteredCurve]?
    /// The selectivity each filtered bucket's cold curve is measured at (bucket 5, under 1 %, at 0.5 %).
    public static let coldSelectivity: [Int: Double] = [1: 0.6, 2: 0.35, 3: 0.1, 4: 0.025, 5: 0.005]
    /// The range of selectivities of each filtered bucket (`RecallCalibration.bucket`; bucket 5 down to 0.1 %).
    public static let bucketRange: [Int: ClosedRange<Double>] = [
        1: 0.5...1, 2: 0.2...0.5, 3: 0.05...0.2, 4: 0.01...0.05, 5: 0.001...0.01,
    ]

    /// A cold curve's queries answered with an exact cold step (every block its bound cannot rule out): their
    /// mean recall over both tiers (what the hot step still misses) and its standard error. What the planner
    /// expects where the curve falls short of the target at every effort measured and the cold step goes exact.
    public struct Exact: Sendable, Equatable, Codable {
        public var recall: Double
        public var error: Double
        public init(recall: Double, error: Double) {
            self.recall = recall
            self.error = error
        }
    }
    /// `cold`'s queries with an exact cold step (nil: not recorded, as in calibrations made before it was).
    public var coldExact: Exact?

    /// A cold curve under a filter: the bucket it serves, the selectivity it was measured at, whether its cold
    /// steps ranked every matching row by code (else picked blocks by centroid), its points, and its queries
    /// with an exact cold step.
    public struct ColdFilteredCurve: Sendable, Equatable, Codable {
        public var bucket: Int
        public var selectivity: Double
        public var ranksByCode: Bool
        public var points: [Point]
        public var exact: Exact?
        /// How the filter's rows spread over the cold blocks (`ColdTier.spread`) where it follows the data; nil:
        /// drawn at random (a spread of about 1).
        public var spread: Double?
        public init(
            bucket: Int, selectivity: Double, ranksByCode: Bool, points: [Point], exact: Exact? = nil,
            spread: Double? = nil
        ) {
            self.bucket = bucket
            self.selectivity = selectivity
            self.ranksByCode = ranksByCode
            self.points = points
            self.exact = exact
            self.spread = spread
        }
    }
    /// Live cold rows at the calibration (so a checkpoint can tell when they changed by a fifth), and the
    /// queries `cold` was measured with.
    public var coldRows: Int?
    public var coldQueries: Int?
    /// Queries measured per bucket.
    public var queries: Int
    /// Live rows of the index when measured (a change by a large fraction calls for a new curve).
    public var rows: Int
    /// When, in seconds since 1970.
    public var measuredAt: Double
    /// The recall target the scales were chosen for, and k.
    public var target: Double
    public var k: Int
    /// Seconds the measurement took.
    public var seconds: Double

    public init(
        curves: [Int: [Point]], queries: Int, rows: Int, measuredAt: Double, target: Double, k: Int,
        seconds: Double, cold: [Point]? = nil, coldRows: Int? = nil, coldQueries: Int? = nil,
        coldFiltered: [ColdFilteredCurve]? = nil, coldExact: Exact? = nil
    ) {
        self.curves = curves
        self.cold = cold
        self.coldExact = coldExact
        self.coldFiltered = coldFiltered
        self.coldRows = coldRows
        self.coldQueries = coldQueries
        self.queries = queries
        self.rows = rows
        self.measuredAt = measuredAt
        self.target = target
        self.k = k
        self.seconds = seconds
    }

    /// Recall cannot fall as effort rises: adjacent points whose means fall are pooled (pool-adjacent-
    /// violators), each pooled point at the larger scale with the larger error.
    public static func monotone(_ points: [Point]) -> [Point] {
        var out: [(point: Point, weight: Double)] = []
        for p in points.sorted(by: { $0.scale < $1.scale }) {
            out.append((p, 1))
            while out.count >= 2, out[out.count - 2].point.recall > out[out.count - 1].point.recall {
                let b = out.removeLast(), a = out.removeLast()
                let w = a.weight + b.weight
                out.append(
                    (
                        Point(
                            scale: b.point.scale, recall: (a.point.recall * a.weight + b.point.recall * b.weight) / w,
                            error: max(a.point.error, b.point.error)), w
                    ))
            }
        }
        return out.map(\.point)
    }
}
