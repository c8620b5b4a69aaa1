import Foundation
import HNSW
import HybridStore
import Testing

/// The recall target holds from the first query of a fresh process (issue 18): the curves measured at the
/// checkpoint after an import are stored, and plan the queries of the next open.
@Suite struct BuildCalibrationTests {
    /// Gaussian vectors: every dimension independent, the intrinsic dimension is the full 64 (hard for HNSW).
    static func gaussian(_ count: Int, dim: Int, seed: UInt64) -> [[Float]] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            (0..<dim).map { _ in
                let u = Double.random(in: Double.ulpOfOne..<1, using: &rng), v = Double.random(in: 0..<1, using: &rng)
                return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
            }
        }
    }

    /// Mean recall@10 of the first `queries.count` default searches of a store opened from disk.
    static func firstQueriesRecall(
        _ t: TemporaryStore, _ data: [[Float]], _ queries: [[Float]],
        filter: (filter: Filter, matches: (Int) -> Bool)? = nil, configure: (inout Configuration) -> Void = { _ in }
    ) throws -> (Double, Explanation) {
        let store = try t.open(configure)
        defer { store.close() }
        return try queriesRecall(store, try store.collection("g"), data, queries, filter: filter)
    }

    /// Mean recall@10 of default searches for `queries` in `c` (rows `g<i>` with vectors `data`), against exact
    /// answers by L2 among the rows `filter` matches; with the first query's explanation.
    static func queriesRecall(
        _ store: HybridStore, _ c: CollectionRef, _ data: [[Float]], _ queries: [[Float]],
        filter: (filter: Filter, matches: (Int) -> Bool)? = nil
    ) throws -> (Double, Explanation) {
        var total = 0.0
        var first: Explanation? = nil
        for q in queries {
            let answer = try store.query(
                c, near: q, k: 10, where: filter?.filter, options: QueryOptions(), explain: first == nil)
            let (hits, e) = (answer.hits, answer.explanation)
            if first == nil { first = e }
            let truth = Set(
                data.indices.filter { filter?.matches($0) ?? true }
                    .map { ($0, zip(data[$0], q).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }) }
                    .sorted { $0.1 < $1.1 }.prefix(10).map { "g\($0.0)" })
            total += Double(hits.filter { truth.contains($0.id.description) }.count) / 10
        }
        return (total / Double(queries.count), first!)
    }

    @Test func hardDataMeetsTheTargetFromTheFirstQueryAfterReopen() throws {
        let data = Self.gaussian(20_000, dim: 64, seed: 1)
        let queries = Self.gaussian(100, dim: 64, seed: 2)
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection("g", schema: Schema(vector: VectorSpec(dimensions: 64)))
        try store.write { tx in
            for (i, v) in data.enumerated() { try tx.insert(.string("g\(i)"), into: c, vector: v) }
        }
        #expect(try store.calibration(of: c).built == nil)
        try store.checkpoint()
        let built = try #require(try store.calibration(of: c).built)
        store.close()
        // No online checks: what is measured is the build-time calibration alone.
        let (calibrated, explanation) = try Self.firstQueriesRecall(t, data, queries) { $0.recallSampleEvery = 0 }
        #expect(calibrated >= 0.95 && calibrated <= 0.985, "calibrated recall \(calibrated)")
        #expect(explanation.recallSource.contains("build-time queries"), "\(explanation)")
        #expect(explanation.description.contains("build-time queries"))
        if let error = explanation.expectedRecallError {
            // The interval the explanation gives holds the measured mean (3 standard errors of 100 queries).
            #expect(
                abs(explanation.plan.expectedRecall - calibrated) <= 3 * max(error, 0.01) + 0.02,
                "expected \(explanation.plan.expectedRecall) ± \(error), measured \(calibrated)")
        }
        print(
            "build-time calibration: \(built.seconds) s; first 100 queries recall \(calibrated); ef \(explanation.plan.effort ?? 0); expected \(explanation.plan.expectedRecall); curve \(built.curves[0]!.map { String(format: "%.2f:%.3f", $0.scale, $0.recall) })"
        )
    }

    /// Easy data (rows near a 4-d subspace of 32-d space): the curve lets the planner search with less effort
    /// than the static model's (which over-serves there), and the first queries of a fresh process still meet
    /// the target, inside the interval the explanation gives.
    @Test func easyDataLowersTheEffortAndStillMeetsTheTarget() throws {
        func nearSubspace(_ count: Int, seed: UInt64) -> [[Float]] {
            let basis = Self.gaussian(4, dim: 32, seed: 77)
            let z = Self.gaussian(count, dim: 4, seed: seed), noise = Self.gaussian(count, dim: 32, seed: seed + 1)
            return (0..<count).map { i in
                (0..<32).map { d in (0..<4).reduce(0.02 * noise[i][d]) { $0 + z[i][$1] * basis[$1][d] } }
            }
        }
        let data = nearSubspace(10_000, seed: 5)
        let queries = nearSubspace(100, seed: 50)
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection("g", schema: Schema(vector: VectorSpec(dimensions: 32)))
        try store.write { tx in
            for (i, v) in data.enumerated() { try tx.insert(.string("g\(i)"), into: c, vector: v) }
        }
        try store.checkpoint()
        store.close()
        let (recall, explanation) = try Self.firstQueriesRecall(t, data, queries) { $0.recallSampleEvery = 0 }
        let effort = try #require(explanation.plan.effort)
        #expect(effort < Planner.effort(forRecall: 0.95, k: 10), "\(explanation)")
        #expect(recall >= 0.95, "recall \(recall) at ef \(effort)")
        let interval = try #require(explanation.expectedRecallError)
        #expect(
            abs(explanation.plan.expectedRecall - recall) <= interval,
            "expected \(explanation.plan.expectedRecall) ± \(interval), measured \(recall)")
    }

    /// Clustered anisotropic data (as embeddings are: clusters, and each dimension its own spread): a row hidden in
    /// the graph it was built into is a harder query than a fresh one, the more so the older the row (the rows
    /// inserted after it pruned links for it too), so the curves are measured on the latest rows. Drawn from every
    /// row, the curve here erred safe by 0.008 at the least effort it then allowed (ef 20, expected 0.982 ± 0.013,
    /// 300 fresh queries 0.990, which fails this test): recall far above the target at about twice the effort it
    /// needed (now ef 11, expected 0.959 ± 0.018, measured 0.956). The first queries of a fresh process land inside the
    /// interval the explanation gives, at the target, not far above it.
    @Test func clusteredAnisotropicDataIsNotOverServed() throws {
        let dim = 32
        let (_, mixture) = Self.anisotropicMixture(count: 10_300, dim: dim, clusters: 30, seed: 96)
        let data = Array(mixture.prefix(10_000)), queries = Array(mixture.suffix(300))
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection("g", schema: Schema(vector: VectorSpec(dimensions: dim)))
        try store.write { tx in
            for (i, v) in data.enumerated() { try tx.insert(.string("g\(i)"), into: c, vector: v) }
        }
        try store.checkpoint()
        store.close()
        let (recall, explanation) = try Self.firstQueriesRecall(t, data, queries) { $0.recallSampleEvery = 0 }
        let interval = try #require(explanation.expectedRecallError)
        // The interval is for 100 queries' mean; 300 queries' mean strays less. At the target within two standard
        // errors of a 300-query mean (~0.005 each), and not over it by more than the band's width.
        #expect(
            abs(explanation.plan.expectedRecall - recall) <= interval,
            "expected \(explanation.plan.expectedRecall) ± \(interval), measured \(recall), \(explanation)")
        #expect(recall >= 0.94 && recall <= 0.975, "recall \(recall), \(explanation)")
    }

    /// On easy clustered data a wide filter's curve meets the target below the filtered floor (¼). A filter drawn at
    /// random (its rows link outside it as often as at random) is planned there, and its first queries after reopen
    /// land at the target inside the explained interval, not far above it (at the floor, such filters on clustered
    /// 96-d data got 0.978–0.995 where 0.95 was asked). A filter of whole clusters stays at the floor.
    @Test func aRandomFilterIsPlannedBelowTheFilteredFloor() throws {
        let dim = 32
        let (labels, mixture) = Self.anisotropicMixture(count: 10_300, dim: dim, clusters: 30, seed: 96)
        let data = Array(mixture.prefix(10_000)), queries = Array(mixture.suffix(300))
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection(
            "g",
            schema: Schema(
                vector: VectorSpec(dimensions: dim),
                columns: [.integer("r", filterable: true), .integer("cluster", filterable: true)]))
        try store.write { tx in
            for (i, v) in data.enumerated() {
                try tx.insert(
                    .string("g\(i)"), into: c, vector: v,
                    values: ["r": .integer(Self.draw(i)), "cluster": .integer(Int64(labels[i]))])
            }
        }
        try store.checkpoint()
        let clusters = try store.query(
            c, near: queries[0], k: 10, where: Column("cluster") < 18, options: QueryOptions(), explain: true
        ).explanation
        #expect(!clusters.plan.belowFilteredFloor && clusters.effortScale >= RecallCalibration.minFilteredScale)
        store.close()
        let (recall, explanation) = try Self.firstQueriesRecall(
            t, data, queries, filter: (Column("r") < 60, { Self.draw($0) < 60 })
        ) { $0.recallSampleEvery = 0 }
        #expect(explanation.plan.belowFilteredFloor && explanation.plan.hotSpread == 1, "\(explanation)")
        #expect(explanation.effortScale < RecallCalibration.minFilteredScale, "\(explanation)")
        #expect(explanation.description.contains("below the floor for filters that follow the data"))
        let interval = try #require(explanation.expectedRecallError)
        #expect(
            abs(explanation.plan.expectedRecall - recall) <= interval && recall >= 0.94 && recall <= 0.975,
            "expected \(explanation.plan.expectedRecall) ± \(interval), measured \(recall), \(explanation)")
    }

    /// Over both tiers, under a filter that follows the data (clustered anisotropic data, normalised as cosine
    /// embeddings are; the filter keeps 7 of 50 clusters, so most queries' matches lie in clusters away from
    /// them), the cold step's effort comes from the curve measured under a filter following the data, which the
    /// filter's spread over the cold blocks picks, not from the one drawn at random: the target is met, and the
    /// expectation holds. (Before: on such 96-d data with 20,000 rows, 0.914 where 0.988 was expected.) All hot
    /// first: what explain says of a wide filter that follows the data.
    @Test func aFilterFollowingTheDataMeetsTheTargetOverBothTiers() throws {
        let dim = 96
        let (labels, mixture) = Self.anisotropicMixture(
            count: 20_200, dim: dim, clusters: 50, seed: 196, normalised: true)
        let data = Array(mixture.prefix(20_000)), queries = Array(mixture.suffix(200))
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection(
            "g",
            schema: Schema(
                vector: VectorSpec(dimensions: dim),
                columns: [
                    .integer("seq", filterable: true), .integer("grp", filterable: true),
                    .integer("r", filterable: true),
                ]))
        try store.write { tx in
            for (i, v) in data.enumerated() {
                try tx.insert(
                    .string("g\(i)"), into: c, vector: v,
                    values: [
                        "seq": .integer(Int64(i)), "grp": .integer(Int64(labels[i] % 7)), "r": .integer(Self.draw(i)),
                    ])
            }
        }
        try store.checkpoint()
        // All hot, a wide filter answered by the filtered graph: where it was drawn at random, from the curve measured
        // under random filters; where it follows the data (its rows link among themselves), from a curve of its own,
        // measured when it is first planned (before it was: 0.939 where 0.983 was expected, on such data).
        for (filter, follows) in [(Column("grp") < 4, true), (Column("r") < 60, false)] {
            let hot = try store.query(c, near: queries[1], k: 10, where: filter, options: QueryOptions(), explain: true)
                .explanation
            try #require(hot.plan.strategy == .filteredGraph, "\(hot)")
            let spread = try #require(hot.plan.hotSpread, "\(hot)")
            #expect(follows ? spread < 0.6 : spread == 1, "\(hot)")
            if case .filterCurve(let n, _, nil) = hot.plan.recallBasis {
                #expect(follows && n >= 24, "\(hot)")
            } else {
                #expect(!follows, "\(hot)")
            }
            #expect(hot.description.contains("its own curve") == follows, "\(hot)")
            // Measured by this, the filter's first query (outside the collection's lock), then planned again.
            #expect((hot.timingsMs["filter curve"] != nil) == follows, "\(hot)")
            #expect(!hot.description.contains("curve is a random filter's"), "\(hot)")
        }
        let (hotRecall, hotExplained) = try Self.queriesRecall(
            store, c, data, queries, filter: (Column("grp") < 4, { labels[$0] % 7 < 4 }))
        let hotInterval = try #require(hotExplained.expectedRecallError)
        #expect(
            hotRecall >= 0.94 && abs(hotExplained.plan.expectedRecall - hotRecall) <= hotInterval,
            "expected \(hotExplained.plan.expectedRecall) ± \(hotInterval), measured \(hotRecall), \(hotExplained)")
        #expect(try store.tier(c, where: Column("seq") < 16_000, to: .cold) == 16_000)
        try store.checkpoint()
        let built = try #require(try store.calibration(of: c).built)
        #expect(built.coldFiltered?.contains { $0.spread != nil } == true, "\(built)")
        // A filter drawn independently of the vectors spreads as widely as at random: the random curve alone.
        let random = try store.query(
            c, near: queries[0], k: 10, where: Column("r") < 14, options: QueryOptions(), explain: true
        ).explanation
        #expect(random.plan.cold?.spread == 1, "\(random)")
        #expect(random.plan.cold?.ownCurve == nil, "\(random)")
        // A wide one that follows the data has no build-time curve of its kind (none is measured at 20 % and wider):
        // it is planned on a cold curve of its own, measured when it is first planned and remembered (before it was:
        // 0.885 where the random filter's curve expected 0.960, on such data).
        func wide() throws -> Explanation {
            try store.query(
                c, near: queries[0], k: 10, where: Column("grp") < 4, options: QueryOptions(), explain: true
            ).explanation
        }
        let first = try wide()
        let own = try #require(first.plan.cold?.ownCurve, "\(first)")
        #expect((first.plan.cold?.spread ?? 1) < 1 && first.plan.cold?.followedTheData == true, "\(first)")
        #expect(own.queries >= 24 && first.description.contains("this filter's own cold curve"), "\(first)")
        #expect(!first.description.contains("no filter like it was measured"), "\(first)")
        let again = try wide()
        #expect(again.plan.cold?.ownCurve == own && first.timingsMs["cold curve"] != nil, "\(first)")
        #expect(again.timingsMs["cold curve"] == nil, "\(again)")
        let (wideRecall, wideExplained) = try Self.queriesRecall(
            store, c, data, queries, filter: (Column("grp") < 4, { labels[$0] % 7 < 4 }))
        let wideInterval = try #require(wideExplained.expectedRecallError)
        #expect(
            wideRecall >= 0.94 && abs(wideExplained.plan.expectedRecall - wideRecall) <= wideInterval,
            "expected \(wideExplained.plan.expectedRecall) ± \(wideInterval), measured \(wideRecall), \(wideExplained)")
        // Rows moved into the cold tier change its blocks: the curve is measured again.
        #expect(try store.tier(c, where: Column("seq") < 16_200, to: .cold) == 200)
        #expect(try wide().plan.cold?.ownCurve.map { $0 != own } == true)
        store.close()
        let (recall, explanation) = try Self.firstQueriesRecall(
            t, data, queries, filter: (Column("grp") == 3, { labels[$0] % 7 == 3 })
        ) { $0.recallSampleEvery = 0 }
        let interval = try #require(explanation.expectedRecallError)
        // The interval is for 100 queries' mean; 200 queries' mean strays less.
        #expect(
            recall >= 0.95 && explanation.plan.expectedRecall - recall <= interval,
            "expected \(explanation.plan.expectedRecall) ± \(interval), measured \(recall), \(explanation)")
        #expect(explanation.plan.cold?.followedTheData == true, "\(explanation)")
        #expect(!explanation.description.contains("no filter like it was measured"), "\(explanation)")
        let spread = try #require(explanation.plan.cold?.spread, "\(explanation)")
        #expect(spread < 0.5 && explanation.description.contains("as widely as at random"), "\(explanation)")
    }

    /// With four rows in five cold, the cold step's probes come from a curve measured over both tiers at the
    /// checkpoint after the move: a search over both tiers meets the target from the first query of a fresh
    /// process, where the store's probe rule alone falls short on this (hard, Gaussian) data; explain says
    /// which it rests on.
    @Test func theColdTierIsCalibratedOverBothTiers() throws {
        let data = Self.gaussian(10_000, dim: 32, seed: 21)
        let queries = Self.gaussian(100, dim: 32, seed: 22)
        func build(calibrate: Bool) throws -> (Double, Explanation) {
            let t = TemporaryStore()
            defer { t.cleanup() }
            let store = try t.open { $0.calibrateAtCheckpoint = calibrate }
            let c = try store.createCollection(
                "g",
                schema: Schema(
                    vector: VectorSpec(dimensions: 32),
                    columns: [.integer("seq", filterable: true), .integer("r", filterable: true)]))
            try store.write { tx in
                for (i, v) in data.enumerated() {
                    try tx.insert(
                        .string("g\(i)"), into: c, vector: v,
                        values: ["seq": .integer(Int64(i)), "r": .integer(Self.draw(i))])
                }
            }
            try store.checkpoint()
            #expect(try store.tier(c, where: Column("seq") < 8000, to: .cold) == 8000)
            try store.checkpoint()
            if calibrate {
                let built = try #require(try store.calibration(of: c).built)
                #expect(built.coldRows == 8000 && (built.cold?.count ?? 0) >= 2, "\(built)")
                // A curve under a filter per filtered bucket, each over both tiers with the hot rows exact.
                let curves = built.coldFiltered ?? []
                #expect(Set(curves.map(\.bucket)) == [1, 2, 3, 4, 5], "\(built)")
                #expect(try store.statistics(c).coldFilteredEffortScales.count == curves.count)
                // Where a bucket's range takes both ways on this tier, a curve each way under a filter drawn at random.
                let drawn = curves.filter { $0.spread == nil }
                for curve in drawn where drawn.filter({ $0.bucket == curve.bucket }).count == 2 {
                    #expect(Set(drawn.filter { $0.bucket == curve.bucket }.map(\.ranksByCode)).count == 2)
                }
                // And one under a filter following the data per bucket below 20 %, its rows gathered in few blocks.
                let following = curves.filter { $0.spread != nil }
                #expect(Set(following.map(\.bucket)) == [3, 4, 5], "\(built)")
                #expect(following.allSatisfy { $0.spread! < 0.7 }, "\(following.map(\.spread))")
                // Each curve's queries with an exact cold step (what an exact fallback expects): at least what any
                // effort measured got them, at most all their hot neighbours' share missed.
                for (points, exact) in [(built.cold ?? [], built.coldExact)] + curves.map({ ($0.points, $0.exact) }) {
                    let exact = try #require(exact, "\(built)")
                    #expect(exact.recall >= (points.map(\.recall).max() ?? 0) - 1e-9 && exact.recall <= 1, "\(built)")
                }
            }
            if calibrate {
                // Under a filter over both tiers, the cold step's effort comes from the curve under a filter of its
                // selectivity; where the hot step is a graph search, explain says what each tier expects. (The
                // graph is asked for: on 2,000 hot rows the planner's costs of a graph and of a scan are within 1 %
                // of each other, and which wins turns on the graph the build made.)
                var graphFirst = QueryOptions()
                graphFirst.strategy = .filteredGraph
                let f = try store.query(
                    c, near: queries[0], k: 10, where: Column("seq") >= 4000, options: graphFirst, explain: true
                ).explanation
                #expect(f.ran == .filteredGraph, "\(f)")
                #expect(f.plan.cold?.source == .calibratedFiltered, "\(f)")
                let withExactHot = try #require(f.plan.cold?.expectedWithExactHot, "\(f)")
                // The whole query's expectation is both curves together where the hot step's came from its curve (the
                // hot step's misses, in its share of the matches, off the cold curve's); else the cold curve's is
                // stated beside the hot rows' own.
                if case .bothCurves = f.plan.recallBasis {
                    #expect(f.description.contains("over both tiers: the hot curve's"), "\(f)")
                    #expect(f.plan.expectedRecall < withExactHot, "\(f)")
                } else {
                    #expect(f.description.contains("the cold step's curve under a filter expects"), "\(f)")
                }
            }
            store.close()
            let filtered = try Self.firstQueriesRecall(
                t, data, queries, filter: (Column("r") < 30, { Self.draw($0) < 30 })
            ) {
                $0.recallSampleEvery = 0
                $0.calibrateAtCheckpoint = calibrate
            }
            print("under a 30 % filter over both tiers, calibrate \(calibrate): \(filtered.0)\n\(filtered.1)")
            if calibrate {
                #expect(filtered.0 >= 0.95, "under a filter over both tiers: \(filtered.0)\n\(filtered.1)")
                #expect(filtered.1.plan.cold?.source == .calibratedFiltered, "\(filtered.1)")
            }
            return try Self.firstQueriesRecall(t, data, queries) {
                $0.recallSampleEvery = 0
                $0.calibrateAtCheckpoint = calibrate
            }
        }
        let (calibrated, e) = try build(calibrate: true)
        #expect(calibrated >= 0.95, "over both tiers, calibrated: \(calibrated)")
        #expect(
            e.coldEffortSource == "calibrated over both tiers" && e.recallSource.hasPrefix("over both tiers"), "\(e)")
        #expect(!e.description.contains("not measured"), "\(e)")
        // An effort past the largest the calibration ran (modelled) is said where the expected recall is.
        var modelled = e
        modelled.plan.cold?.beyondMeasured = true
        #expect(!e.recallSource.contains("modelled"), "\(e.recallSource)")
        #expect(modelled.recallSource.hasSuffix("the cold step's effort modelled past the largest run"))
        let interval = try #require(e.expectedRecallError)
        #expect(
            abs(e.plan.expectedRecall - calibrated) <= interval,
            "expected \(e.plan.expectedRecall) ± \(interval), measured \(calibrated)")
        let (rule, u) = try build(calibrate: false)
        #expect(rule < 0.95, "the probe rule met the target here; the set is not hard: \(rule)")
        #expect(u.coldEffortSource == "uncalibrated: the store's probe rule" && u.coldEffort == 1)
        print("over both tiers: calibrated \(calibrated) at cold effort \(e.coldEffort ?? 0); the rule alone \(rule)")
    }

    /// A value in 0..<100 drawn for row i, independent of its vector.
    /// Clustered anisotropic rows, as embeddings are (clusters, and each dimension its own spread): `count` rows
    /// of `dim` around `clusters` random centres, with each row's cluster; normalised where asked (as cosine
    /// embeddings are). `seed` draws the centres, and the next three seeds the spreads, the clusters and the noise.
    static func anisotropicMixture(
        count: Int, dim: Int, clusters: Int, seed: UInt64, normalised: Bool = false
    ) -> (labels: [Int], rows: [[Float]]) {
        let centres = gaussian(clusters, dim: dim, seed: seed).map { $0.map { 2 * $0 } }
        let spreads = gaussian(1, dim: dim, seed: seed + 1)[0].map { Float(exp(0.7 * Double($0))) }
        var rng = SplitMix64(seed: seed + 2)
        let labels = (0..<count).map { _ in Int.random(in: 0..<clusters, using: &rng) }
        let rows = zip(labels, gaussian(count, dim: dim, seed: seed + 3)).map { label, noise in
            let v = (0..<dim).map { centres[label][$0] + spreads[$0] * noise[$0] }
            guard normalised else { return v }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return v.map { $0 / norm }
        }
        return (labels, rows)
    }

    static func draw(_ i: Int) -> Int64 { Int64(SplitMix64.mix(UInt64(i) ^ 0xF11_7E5) % 100) }

    @Test func uncalibratedSaysSoAndMissesOnHardData() throws {
        let data = Self.gaussian(20_000, dim: 64, seed: 1)
        let queries = Self.gaussian(100, dim: 64, seed: 2)
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open { $0.calibrateAtCheckpoint = false }
        let c = try store.createCollection("g", schema: Schema(vector: VectorSpec(dimensions: 64)))
        try store.write { tx in
            for (i, v) in data.enumerated() { try tx.insert(.string("g\(i)"), into: c, vector: v) }
        }
        try store.checkpoint()
        store.close()
        let (recall, explanation) = try Self.firstQueriesRecall(t, data, queries) {
            $0.recallSampleEvery = 0
            $0.calibrateAtCheckpoint = false
        }
        #expect(explanation.recallSource == "uncalibrated: static model")
        #expect(explanation.description.contains("uncalibrated: static model"))
        #expect(recall < 0.95, "the static model met the target here; the hard set is not hard: \(recall)")
    }

    @Test func calibrationIsRedoneAfterALargeChange() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection("g", schema: Schema(vector: VectorSpec(dimensions: 16)))
        let data = Self.gaussian(3000, dim: 16, seed: 3)
        try store.write { tx in
            for (i, v) in data.prefix(1000).enumerated() { try tx.insert(.string("g\(i)"), into: c, vector: v) }
        }
        try store.checkpoint()
        let first = try #require(try store.calibration(of: c).built)
        #expect(first.rows == 1000)
        try store.write { tx in for i in 1000..<1100 { try tx.insert(.string("g\(i)"), into: c, vector: data[i]) } }
        try store.checkpoint()
        #expect(try store.calibration(of: c).built?.rows == 1000)  // a tenth more: kept
        try store.write { tx in for i in 1100..<3000 { try tx.insert(.string("g\(i)"), into: c, vector: data[i]) } }
        try store.checkpoint()
        #expect(try store.calibration(of: c).built?.rows == 3000)  // tripled: measured again
        store.close()
        let reopened = try t.open()
        #expect(try reopened.calibration(of: reopened.collection("g")).built?.rows == 3000)  // stored
        reopened.close()
    }

    /// A checkpoint measures curves that are missing or stale: none yet; the hot or cold rows moved by a fifth; a cold
    /// tier without a curve (measured before filtered cold curves were, or not at all because its cold steps failed,
    /// as in a calibration that ran while `hybridctl tier` moved rows cold), unless a cold block is corrupt.
    @Test func calibrationIsDueWhereACurveIsMissingOrStale() {
        func built(rows: Int, coldRows: Int, cold: Bool, filtered: Bool) -> BuildCalibration {
            let p = [BuildCalibration.Point(scale: 1, recall: 0.96, error: 0.005)]
            return BuildCalibration(
                curves: [0: p], queries: 100, rows: rows, measuredAt: 0, target: 0.95, k: 10, seconds: 1,
                cold: cold ? p : nil, coldRows: coldRows, coldQueries: cold ? 100 : nil,
                coldFiltered: filtered ? [.init(bucket: 1, selectivity: 0.6, ranksByCode: false, points: p)] : nil)
        }
        let due = HybridStore.calibrationDue(rows:coldRows:coldCorrupt:built:)
        #expect(!due(400, 0, false, nil), "too few rows to measure")
        #expect(due(40_000, 0, false, nil))
        let hotOnly = built(rows: 40_000, coldRows: 0, cold: false, filtered: false)
        #expect(!due(40_000, 0, false, hotOnly))
        #expect(!due(45_000, 300, false, hotOnly), "under a fifth, and too few cold rows for a curve")
        #expect(due(50_000, 0, false, hotOnly))
        #expect(due(40_000, 160_000, false, hotOnly), "a cold tier appeared")
        let complete = built(rows: 40_000, coldRows: 160_000, cold: true, filtered: true)
        #expect(!due(40_000, 160_000, false, complete))
        #expect(!due(40_000, 140_000, false, complete))
        #expect(due(40_000, 120_000, false, complete))
        let failed = built(rows: 40_000, coldRows: 160_000, cold: false, filtered: false)
        #expect(due(40_000, 160_000, false, failed), "the cold rows recorded without a curve")
        #expect(!due(40_000, 160_000, true, failed), "not while a cold block is corrupt")
        #expect(due(40_000, 160_000, false, built(rows: 40_000, coldRows: 160_000, cold: true, filtered: false)))
    }

    /// A store calibrated before cold curves under a filter were measured (a cold curve, none under a filter) gets
    /// them at its next checkpoint, survives reopen with them, and is not measured again at the one after.
    @Test func anEarlierCalibrationGetsItsFilteredColdCurves() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open()
        let c = try store.createCollection(
            "g", schema: Schema(vector: VectorSpec(dimensions: 16), columns: [.integer("seq", filterable: true)]))
        let data = Self.gaussian(3000, dim: 16, seed: 5)
        try store.write { tx in
            for (i, v) in data.enumerated() {
                try tx.insert(.string("g\(i)"), into: c, vector: v, values: ["seq": .integer(Int64(i))])
            }
        }
        #expect(try store.tier(c, where: Column("seq") < 2000, to: .cold) == 2000)
        try store.checkpoint()
        var earlier = try #require(try store.calibration(of: c).built)
        #expect(earlier.cold != nil && earlier.coldFiltered != nil)
        earlier.coldFiltered = nil  // as an earlier version stored it
        earlier.measuredAt -= 3600
        try store.adopt(earlier, for: c)
        try store.checkpoint()
        let redone = try #require(try store.calibration(of: c).built)
        #expect(redone.measuredAt > earlier.measuredAt && !(redone.coldFiltered ?? []).isEmpty)
        try store.checkpoint()
        #expect(try store.calibration(of: c).built?.measuredAt == redone.measuredAt)  // nothing changed: kept
        store.close()
        let reopened = try t.open()
        #expect(!(try reopened.calibration(of: reopened.collection("g")).built?.coldFiltered ?? []).isEmpty)
        reopened.close()
    }

    /// A checkpoint that a large move queued and that is still waiting or running when the store closes measures
    /// the cold tier's curves all the same: `close()` lets queued work read until it is done. (Before, its cold pass
    /// was refused, "the store is closed", and the tier kept no curve until a later checkpoint.)
    @Test func aCheckpointQueuedBeforeCloseCalibratesTheColdTier() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open { $0.checkpointEveryChanges = 1000 }
        let c = try store.createCollection(
            "g", schema: Schema(vector: VectorSpec(dimensions: 16), columns: [.integer("seq", filterable: true)]))
        let data = Self.gaussian(3000, dim: 16, seed: 6)
        try store.write { tx in
            for (i, v) in data.enumerated() {
                try tx.insert(.string("g\(i)"), into: c, vector: v, values: ["seq": .integer(Int64(i))])
            }
        }
        store.waitForBackgroundWork()  // the checkpoint the inserts queued: the hot tier's curves
        #expect(try store.calibration(of: c).built?.coldRows ?? 0 == 0)
        #expect(try store.tier(c, where: Column("seq") < 2000, to: .cold) == 2000)  // queues a checkpoint
        store.close()
        #expect(store.lastBackgroundError == nil, "\(String(describing: store.lastBackgroundError))")
        let reopened = try t.open()
        defer { reopened.close() }
        let built = try #require(try reopened.calibration(of: reopened.collection("g")).built)
        #expect(built.coldRows == 2000 && built.cold != nil && !(built.coldFiltered ?? []).isEmpty, "\(built)")
    }

    /// A graph that cannot reach the target (a curve that stays at 0.6 whatever the effort, as on data whose
    /// graph falls apart): the planner answers exactly and says why, never a silent miss; where the exact scan
    /// costs too much, the explanation states the shortfall.
    @Test func unreachableTargetFallsBackToExactAndSaysSo() throws {
        let t = TemporaryStore()
        defer { t.cleanup() }
        let store = try t.open { $0.calibrateAtCheckpoint = false }
        let c = try store.createCollection(
            "d", schema: Schema(vector: VectorSpec(dimensions: 8, connectivity: 8, constructionEffort: 32)))
        let data = Self.gaussian(3000, dim: 8, seed: 9)
        try store.write { tx in for (i, v) in data.enumerated() { try tx.insert(.string("d\(i)"), into: c, vector: v) }
        }
        let flat = [0.25, 1, 4, 8].map { BuildCalibration.Point(scale: $0, recall: 0.6, error: 0.01) }
        try store.adopt(
            BuildCalibration(
                curves: [0: flat], queries: 100, rows: 3000, measuredAt: Date().timeIntervalSince1970,
                target: 0.95, k: 10, seconds: 0), for: c)
        let e = try store.explain(c, near: data[3], k: 10)
        #expect(e.plan.strategy == .exact && e.plan.expectedRecall == 1, "\(e)")
        #expect(e.recallSource.hasPrefix("exact: the graph's calibrated recall 0.600"), "\(e.recallSource)")
        #expect(e.description.contains("falls short of the target"))
        let hits = try store.search(c, near: data[3], k: 10)
        #expect(hits.first?.id == "d3" && hits.count == 10)
        store.close()
    }
}

/// The calibration's cold steps keep each query's code estimates and exact distances from one effort to the next
/// (`ColdStepMemo`, its exact distances filled by the one pass over the tier that gives the truth for every query
/// and filter): keeping may change what is read, not what is measured.
@Suite struct CalibrationColdStepTests {
    /// A store of `data` (rows "g0"…, column `seq` = the row's index) whose first `coldRows` rows are tiered cold.
    static func store(
        _ t: TemporaryStore, _ data: [[Float]], metric: Metric, coldRows: Int
    ) throws -> (HybridStore, CollectionRef) {
        let store = try t.open { $0.calibrateAtCheckpoint = false }
        let c = try store.createCollection(
            "g",
            schema: Schema(
                vector: VectorSpec(dimensions: data[0].count, metric: metric),
                columns: [.integer("seq", filterable: true)]))
        try store.write { tx in
            for (i, v) in data.enumerated() {
                try tx.insert(.string("g\(i)"), into: c, vector: v, values: ["seq": .integer(Int64(i))])
            }
        }
        #expect(try store.tier(c, where: Column("seq") < .integer(Int64(coldRows)), to: .cold) == coldRows)
        return (store, c)
    }

    @Test func keptWorkChangesNoAnswerAndThePassIsExact() throws {
        let data = BuildCalibrationTests.gaussian(6000, dim: 24, seed: 31)
        let queries = BuildCalibrationTests.gaussian(12, dim: 24, seed: 32)
        for metric in [Metric.l2, .cosine, .innerProduct] {
            let t = TemporaryStore()
            defer { t.cleanup() }
            let (store, c) = try Self.store(t, data, metric: metric, coldRows: 5000)
            let efforts = [1.0 / 16, 0.25, 1, 4]
            var differed = 0
            let filters: [Double?] = [nil, 0.6, 0.35, 0.05]
            for q in queries {
                let kept = try store.calibrationColdAnswers(
                    c, query: q, k: 10, efforts: efforts, filters: filters, keepingMemo: true)
                let fresh = try store.calibrationColdAnswers(
                    c, query: q, k: 10, efforts: efforts, filters: filters, keepingMemo: false)
                for (f, (kept, fresh)) in zip(kept, fresh).enumerated() {
                    for (a, b) in zip(kept.steps, fresh.steps) {
                        #expect(a.map(\.row) == b.map(\.row) && a.map(\.distance) == b.map(\.distance))
                    }
                    // The pass scored every live row (one of its filters is none), so the kept steps open no block.
                    #expect(kept.blocksRead == 0 && fresh.blocksRead > 0, "\(kept.blocksRead) \(fresh.blocksRead)")
                    // The pass and an exact step agree: the same k rows at the same distances.
                    #expect(kept.pass.count == 10)
                    #expect(kept.pass.map(\.row) == kept.exactStep.map(\.row), "\(metric) \(filters[f] ?? 1)")
                    #expect(
                        zip(kept.pass, kept.exactStep).allSatisfy { abs($0.distance - $1.distance) <= 1e-4 },
                        "\(kept.pass) \(kept.exactStep)")
                    // The smallest effort's step is not the exact answer everywhere (else nothing was tested).
                    if kept.steps[0].map(\.row) != kept.pass.map(\.row) { differed += 1 }
                }
            }
            #expect(differed > 0, "\(metric)")
        }
    }

    /// Past the largest effort a cold curve ran, where it falls short, the calibration models larger efforts from
    /// the blocks its queries' neighbours lie in (`beyondMeasured`). The model tells what steps at those efforts
    /// find: run them, and each modelled point's recall is the steps' within twice its error and 0.01 (measured: within
    /// 0.008).
    @Test func theColdCurvePastItsLargestEffortModelsWhatStepsFind() throws {
        let data = BuildCalibrationTests.gaussian(12_000, dim: 32, seed: 41)
        let queries = BuildCalibrationTests.gaussian(40, dim: 32, seed: 42)
        for metric in [Metric.l2, .cosine, .innerProduct] {
            let t = TemporaryStore()
            defer { t.cleanup() }
            let (store, c) = try Self.store(t, data, metric: metric, coldRows: 12_000)
            let measured = [1.0 / 16, 1.0 / 8, 1.0 / 4]
            let points = try store.calibrationColdCurve(
                c, queries: queries, k: 10, efforts: measured, target: 0.9)
            let modelled = points.filter { $0.scale > measured.last! }
            // Short at ¼ (11 of 750 blocks on isotropic data), so points past it, the last meeting 0.9.
            #expect(modelled.count >= 2, "\(metric) \(points)")
            guard let last = modelled.last else { continue }
            #expect(last.recall - RecallCalibration.promiseZ * last.error >= 0.9, "\(metric) \(points)")
            var found = [Double](repeating: 0, count: modelled.count)
            for q in queries {
                let answer = try store.calibrationColdAnswers(
                    c, query: q, k: 10, efforts: modelled.map(\.scale), filters: [nil], keepingMemo: false)[0]
                let truth = Set(answer.pass.map(\.row))
                for (j, step) in answer.steps.enumerated() {
                    found[j] += Double(step.filter { truth.contains($0.row) }.count) / Double(truth.count)
                }
            }
            for (point, total) in zip(modelled, found) {
                let steps = total / Double(queries.count)
                #expect(abs(point.recall - steps) <= 2 * point.error + 0.01, "\(metric) \(point) steps \(steps)")
            }
        }
    }
}
