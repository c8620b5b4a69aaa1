import Foundation
import Testing
import QueryPlanner

/// The planner's whole plan of a query (`Planner.plan`): every decision the engine's steps follow, as one value.
@Suite struct QueryPlanTests {
    func input(
        rows: Int = 100_000, matches: Double? = nil, k: Int = 10, searchEffort: Int? = nil,
        forced: Strategy? = nil, inMemory: Bool = true, listed: Int? = nil, cold: QueryPlanInput.Cold? = nil,
        columns: [String] = []
    ) -> QueryPlanInput {
        QueryPlanInput(
            rows: rows, estimatedMatches: matches ?? Double(rows), hasFilter: matches != nil, k: k, dimensions: 128,
            recallTarget: 0.95, searchEffort: searchEffort, forcedStrategy: forced, inMemoryPredicate: inMemory,
            listedMatches: listed, searchesHot: true, cold: cold, hydratedColumns: columns)
    }

    func curve(_ points: [(Double, Double)]) -> [BuildCalibration.Point] {
        points.map { BuildCalibration.Point(scale: $0.0, recall: $0.1, error: 0.004) }
    }

    /// Build-time curves of 40,000 hot rows (320 queries; the unfiltered bucket and the widest filtered one) and
    /// 160,000 cold rows (100 queries): over both tiers, and under a 60 % filter picking blocks by centroid as
    /// `coldFiltered` says.
    func hotAndCold(coldFiltered: [BuildCalibration.Point]) -> RecallCalibration {
        var calibration = RecallCalibration()
        calibration.adopt(
            BuildCalibration(
                curves: [
                    0: curve([(0.5, 0.93), (1, 0.96), (2, 0.98)]), 1: curve([(0.5, 0.90), (1, 0.955), (2, 0.97)]),
                ],
                queries: 320, rows: 40_000, measuredAt: 0, target: 0.95, k: 10, seconds: 1,
                cold: curve([(1, 0.90), (2, 0.95), (4, 0.97)]), coldRows: 160_000, coldQueries: 100,
                coldFiltered: [.init(bucket: 1, selectivity: 0.6, ranksByCode: false, points: coldFiltered)]))
        return calibration
    }

    /// Build-time curves for the unfiltered bucket and the widest filtered one, whose floor (¼) binds.
    func twoBuckets() -> RecallCalibration {
        var calibration = RecallCalibration()
        calibration.adopt(
            BuildCalibration(
                curves: [
                    0: curve([(1 / 8, 0.93), (1 / 4, 0.97), (1, 0.99)]),
                    1: curve([(1 / 8, 0.94), (0.177, 0.97), (1 / 4, 0.985), (1, 0.995)]),
                ],
                queries: 400, rows: 100_000, measuredAt: 0, target: 0.95, k: 10, seconds: 1))
        return calibration
    }

    /// A cold step for more rows than the curves' k opens more blocks: k ÷ 10 as many ranking rows by code (the
    /// k nearest lie one to a block), √ of it picking blocks by centroid (they gather near the query).
    @Test func aLargerKScalesTheColdBlocks() {
        #expect(Planner.coldKScale(k: 10, measuredAt: 10, ranksByCode: true) == 1)
        #expect(Planner.coldKScale(k: 3, measuredAt: 10, ranksByCode: false) == 1)
        #expect(Planner.coldKScale(k: 100, measuredAt: 10, ranksByCode: true) == 10)
        #expect(abs(Planner.coldKScale(k: 100, measuredAt: 10, ranksByCode: false) - 10.0.squareRoot()) < 1e-12)
        #expect(Planner.coldKScale(k: 40, measuredAt: 20, ranksByCode: true) == 2)
    }

    /// Where the filtered floor (¼) binds a bucket whose curve meets the target lower, the planner asks how the
    /// filter's rows link outside it: at random (1), the curve's own scale below the floor, its expectation read
    /// there, and the plan says so; a filter that follows the data (0.3), or one that cannot be told, stays at the
    /// floor. Not asked where the floor does not bind, nor for a caller's fixed effort.
    @Test func aFilterKnownToBeRandomIsPlannedBelowTheFilteredFloor() throws {
        let calibration = twoBuckets()
        #expect(calibration.scale(selectivity: 0.6, filtered: true) == RecallCalibration.minFilteredScale)
        let wide = input(matches: 60_000)
        var asked = 0
        let floor = Planner.plan(wide, calibration: calibration, probeAdvised: { _ in false }) {
            asked += 1
            return 0.3
        }
        #expect(asked == 1 && floor.effortScale == 0.25 && !floor.belowFilteredFloor && floor.hotSpread == 0.3)
        let unknown = Planner.plan(wide, calibration: calibration, probeAdvised: { _ in false })
        #expect(unknown.effortScale == 0.25 && !unknown.belowFilteredFloor && unknown.hotSpread == nil)
        let random = Planner.plan(wide, calibration: calibration, probeAdvised: { _ in false }) { 1 }
        #expect(random.belowFilteredFloor && random.hotSpread == 1)
        #expect(random.effortScale > 1 / 8 && random.effortScale < 0.177, "\(random)")
        #expect(random.strategy == .filteredGraph && random.effort! < floor.effort!, "\(random)")
        let expected = try #require(random.hot.expectedRecall)
        #expect(expected >= 0.95 + 1.645 * 0.004 - 1e-9 && expected < floor.hot.expectedRecall)
        #expect(random.steps[0].contains("below the floor for filters that follow the data"), "\(random.steps)")
        // A caller's fixed effort, or a bucket whose scale is above the floor: not asked.
        _ = Planner.plan(
            input(matches: 60_000, searchEffort: 40), calibration: calibration, probeAdvised: { _ in false }
        ) {
            Issue.record("asked with a fixed effort")
            return 1
        }
        var hard = RecallCalibration()
        hard.adopt(
            BuildCalibration(
                curves: [0: curve([(1 / 8, 0.93), (1, 0.99)]), 1: curve([(1 / 8, 0.80), (1, 0.90), (4, 0.97)])],
                queries: 400, rows: 100_000, measuredAt: 0, target: 0.95, k: 10, seconds: 1))
        // Above the floor, a spread of 1 changes nothing (it is asked for the filter's own curve, none here).
        let above = Planner.plan(wide, calibration: hard, probeAdvised: { _ in false }) { 1 }
        #expect(!above.belowFilteredFloor && above.effortScale > 0.25, "\(above)")
    }

    /// A filter's own curve: the least effort whose recall, less its standard error, reaches the target, between
    /// measured efforts in log effort; nil where none reaches it; the expectation read at an effort with its interval.
    @Test func aFilterCurveGivesTheLeastEffortThatMeetsTheTarget() throws {
        let curve = FilterCurve(
            points: [
                .init(effort: 72, recall: 0.985, deviation: 0.05), .init(effort: 18, recall: 0.93, deviation: 0.15),
                .init(effort: 36, recall: 0.965, deviation: 0.1),
            ], queries: 64, milliseconds: 30)
        #expect(curve.points.map(\.effort) == [18, 36, 72])
        let effort = try #require(curve.effort(meeting: 0.95))
        #expect(effort > 18 && effort <= 36, "\(effort)")
        let expected = curve.expected(at: effort)
        #expect(expected.recall >= 0.95 && expected.recall < 0.965 && expected.interval > 0.0125)
        #expect(curve.effort(meeting: 0.90) == 18)
        #expect(curve.effort(meeting: 0.98) == nil, "0.985 less its error 0.006 falls short")
        #expect(curve.expected(at: 500).recall == 0.985 && curve.expected(at: 5).recall == 0.93)
        let measured = FilterCurve(efforts: [10, 20], recalls: [[1, 0.8, 0.9, 0.9], [1, 1, 1, 1]], milliseconds: 1)
        #expect(measured.queries == 4 && abs(measured.points[0].recall - 0.9) < 1e-12)
        #expect(measured.points[1].deviation == 0 && abs(measured.points[0].deviation - 0.08165) < 1e-4)
    }

    /// A filtered graph planned from a build-time curve whose filter follows the data (spread under 1) is planned on
    /// the filter's own curve, asked at half to 32 times the planned effort: the effort and expectation are the
    /// curve's, and explain says so, with a cold tier beside too. A filter drawn at random or a caller's fixed effort
    /// does not ask; a curve short of the target everywhere leaves an exact plan where it is cheap enough, else states the shortfall.
    @Test func aFilterFollowingTheDataIsPlannedOnItsOwnCurve() throws {
        let calibration = twoBuckets()
        let wide = input(matches: 60_000)
        let random = Planner.plan(wide, calibration: calibration, probeAdvised: { _ in false })
        let planned = try #require(random.effort)
        var asked: [Int] = []
        func own(_ points: [(Int, Double)]) -> ([Int]) -> FilterCurve? {
            { efforts in
                asked = efforts
                return FilterCurve(
                    points: points.map { .init(effort: $0.0, recall: $0.1, deviation: 0.08) }, queries: 64,
                    milliseconds: 12)
            }
        }
        let follows = Planner.plan(
            wide, calibration: calibration, probeAdvised: { _ in false }, linkSpread: { 0.3 },
            filterCurve: own([(planned, 0.90), (planned * 2, 0.97), (planned * 4, 0.99)]))
        #expect(asked.contains(planned) && asked.contains(planned * 32) && asked.min()! < planned, "\(asked)")
        guard case .filterCurve(64, 12, nil) = follows.recallBasis else {
            Issue.record("\(follows.recallBasis)")
            return
        }
        #expect(follows.strategy == .filteredGraph && follows.effort! > planned && follows.effort! <= planned * 2)
        #expect(follows.hot.expectedRecall >= 0.95 && follows.expectedRecallInterval != nil)
        #expect(follows.steps[0].contains("from this filter's own curve"), "\(follows.steps)")
        #expect(follows.filterCurveUsed && !random.filterCurveUsed)
        #expect(follows.recallBasis.description().contains("its own curve, 64 rows"))
        // With a cold tier beside, too: the curve speaks for the hot step's share.
        asked = []
        let tier = QueryPlanInput.Cold(
            blocks: 100, liveRows: 400_000, estimatedMatches: 240_000, fixedProbes: nil, effort: 1)
        let beside = Planner.plan(
            input(matches: 60_000, cold: tier), calibration: calibration, probeAdvised: { _ in false },
            linkSpread: { 0.3 }, filterCurve: own([(planned, 0.93), (planned * 2, 0.97)]))
        #expect(!asked.isEmpty && beside.filterCurveUsed && beside.effort! > planned, "\(beside)")
        // Drawn at random, or a fixed effort: not asked.
        asked = []
        _ = Planner.plan(
            wide, calibration: calibration, probeAdvised: { _ in false }, linkSpread: { 1 }, filterCurve: own([]))
        _ = Planner.plan(
            input(matches: 60_000, searchEffort: 40), calibration: calibration, probeAdvised: { _ in false },
            linkSpread: { 0.3 }, filterCurve: own([]))
        #expect(asked.isEmpty)
        // Short everywhere: exact where it costs at most 32 times the graph, else the shortfall stated.
        let short = own([(planned, 0.80), (planned * 8, 0.90)])
        let cheap = Planner.plan(
            input(rows: 20_000, matches: 12_000), calibration: calibration, probeAdvised: { _ in false },
            linkSpread: { 0.3 }, filterCurve: short)
        #expect(cheap.strategy == .exact && cheap.filterCurveUsed, "\(cheap)")
        // Met only at an effort dearer than the scan: exact, the probe in front of it at that effort.
        let scan = Planner.plan(
            input(rows: 20_000, matches: 12_000), calibration: calibration, probeAdvised: { _ in true },
            linkSpread: { 0.3 }, filterCurve: own([(planned, 0.80), (planned * 32, 0.99)]))
        #expect(scan.strategy == .exact && scan.recallBasis == .exact && scan.filterCurveUsed, "\(scan)")
        #expect(scan.probe.map { $0.effort > planned && $0.expectedRecall > 0.95 } ?? true, "\(scan)")
        if case .exactForRecall(let recall, _) = cheap.recallBasis { #expect(abs(recall - 0.90) < 1e-9) }
        let dear = Planner.plan(
            input(rows: 10_000_000, matches: 6_000_000), calibration: calibration, probeAdvised: { _ in false },
            linkSpread: { 0.3 }, filterCurve: short)
        guard case .filterCurve(_, _, let shortBy?) = dear.recallBasis else {
            Issue.record("\(dear.recallBasis)")
            return
        }
        #expect(abs(shortBy - 0.05) < 1e-9 && dear.strategy == .filteredGraph, "\(dear)")
    }

    /// A k below the curves' (10) is searched at 10's effort, calibrated or not, and a larger k at its own.
    @Test func aSmallerKIsSearchedAtTheEffortOfTen() {
        let calibrated = twoBuckets()
        let ten = Planner.plan(input(k: 10), calibration: calibrated) { _ in true }
        for k in [1, 3, 9] {
            #expect(Planner.effort(forRecall: 0.95, k: k) == Planner.effort(forRecall: 0.95, k: 10))
            let plan = Planner.plan(input(k: k), calibration: calibrated) { _ in true }
            #expect(plan.strategy == .graph && plan.effort == ten.effort, "k \(k): \(plan)")
            let filtered = Planner.plan(input(matches: 60_000, k: k), calibration: calibrated) { _ in true }
            let filteredTen = Planner.plan(input(matches: 60_000, k: 10), calibration: calibrated) { _ in true }
            #expect(filtered.effort == filteredTen.effort, "k \(k): \(filtered)")
        }
        #expect(Planner.effort(forRecall: 0.95, k: 20) == 2 * Planner.effort(forRecall: 0.95, k: 10))
    }

    @Test func anUncalibratedUnfilteredQueryIsAPlainGraphSearchWithNothingElse() {
        var asked = 0
        let plan = Planner.plan(input(), calibration: RecallCalibration()) { _ in
            asked += 1; return true
        }
        #expect(plan.strategy == .graph && plan.effort == Planner.effort(forRecall: 0.95, k: 10))
        #expect(plan.recallBasis == .staticModel && plan.probe == nil && plan.fallback == nil && plan.cold == nil)
        #expect(plan.hydration == .none && asked == 0)
        #expect(plan.steps == ["hot: graph, ef 80"])
    }

    /// An exact plan over many matches gets the probe only where the bucket is measured and the shape's probes
    /// have paid off; with a probe in front, a short graph answer falls back to exact.
    @Test func theProbeIsPlannedOnlyWhereMeasuredAndAdvised() {
        var calibration = RecallCalibration()
        let filtered = input(matches: 3000)
        let unmeasured = Planner.plan(filtered, calibration: calibration) { _ in
            Issue.record("asked unmeasured"); return true
        }
        #expect(unmeasured.strategy == .exact && unmeasured.probe == nil && unmeasured.fallback == nil)
        for _ in 0..<RecallCalibration.windowSize {
            calibration.record(recall: 0.95, selectivity: 0.03, filtered: true, target: 0.95)
        }
        var buckets: [Int] = []
        let declined = Planner.plan(filtered, calibration: calibration) {
            buckets.append($0); return false
        }
        #expect(declined.probe == nil && buckets == [RecallCalibration.bucket(selectivity: 0.03, filtered: true)])
        let probed = Planner.plan(filtered, calibration: calibration) { _ in true }
        let probe = try! #require(probed.probe)
        #expect(probed.strategy == .exact && probed.fallback == .exact)
        #expect(probe.budget == Int(3000 * Planner.exactDistanceCost(dimensions: 128)))
        #expect(
            probe.effort
                == Planner.filteredEffort(
                    forRecall: 0.95, k: 10, scale: calibration.scale(selectivity: 0.03, filtered: true),
                    selectivity: 0.03))
        // Too few matches to be worth a probe, a caller's fixed effort, or a forced strategy: none.
        #expect(Planner.plan(input(matches: 500), calibration: calibration) { _ in true }.probe == nil)
        #expect(
            Planner.plan(input(matches: 3000, searchEffort: 40), calibration: calibration) { _ in true }.probe == nil)
        #expect(Planner.plan(input(matches: 3000, forced: .exact), calibration: calibration) { _ in true }.probe == nil)
    }

    /// Where the measured curve cannot reach the target, an affordable exact scan answers; otherwise the plan keeps
    /// the graph and states the shortfall.
    @Test func aCurveShortOfTheTargetPlansExactWhereAffordable() {
        var short = RecallCalibration()
        short.adopt(
            BuildCalibration(
                curves: [0: curve([(1, 0.7), (4, 0.8), (8, 0.85)]), 1: curve([(1, 0.7), (8, 0.85)])],
                queries: 100, rows: 10_000, measuredAt: 0, target: 0.95, k: 10, seconds: 1))
        let small = Planner.plan(input(rows: 10_000), calibration: short) { _ in true }
        #expect(small.strategy == .exact && small.expectedRecall == 1 && small.expectedRecallInterval == nil)
        #expect(
            small.recallBasis
                == .exactForRecall(
                    graphRecall: 0.85, interval: short.expected(selectivity: 1, filtered: false)!.interval))
        #expect(small.probe == nil, "an exact plan chosen for recall is not probed")
        // Ten million rows: the scan would cost more than 32 graph searches at the largest effort.
        let large = Planner.plan(input(rows: 10_000_000), calibration: short) { _ in true }
        #expect(large.strategy == .graph && large.expectedRecall == 0.85)
        guard case .buildCurveShort(_, _, let by, let ratio) = large.recallBasis else {
            Issue.record("\(large.recallBasis)")
            return
        }
        #expect(abs(by - 0.10) < 1e-9 && ratio > Planner.exactFallbackCostRatio)
        // A caller's forced strategy stands.
        #expect(Planner.plan(input(rows: 10_000, forced: .graph), calibration: short) { _ in true }.strategy == .graph)
    }

    /// A post-filter that finds too few falls back to the filtered graph over many matches, to exact over few.
    @Test func theFallbackRuleFollowsTheMatches() {
        let calibration = RecallCalibration()
        let many = Planner.plan(input(matches: 95_000, forced: .postFilter, listed: nil), calibration: calibration) {
            _ in true
        }
        #expect(many.strategy == .postFilter && many.fallback == .filteredGraph && many.overFetch != nil)
        let few = Planner.plan(input(rows: 15_000, matches: 14_000, forced: .postFilter), calibration: calibration) {
            _ in true
        }
        #expect(few.fallback == .exact)
        let graph = Planner.plan(input(matches: 30_000, forced: .filteredGraph), calibration: calibration) { _ in true }
        #expect(graph.fallback == .exact)
        #expect(
            Planner.plan(input(forced: .postFilter), calibration: calibration) { _ in true }.fallback == nil,
            "no filter, nothing more to find")
    }

    /// The cold step's budget is the store's rule at the planned effort (or the caller's probes: exact when they
    /// cover every block); unfiltered with a curve over both tiers, the whole query's expected recall is that
    /// curve's.
    @Test func theColdStepAndHydrationAreInThePlan() {
        let tier = QueryPlanInput.Cold(
            blocks: 400, liveRows: 40_000, estimatedMatches: 40_000, fixedProbes: nil, effort: 1)
        let rule = Planner.plan(input(cold: tier), calibration: RecallCalibration()) { _ in true }
        let cold = try! #require(rule.cold)
        #expect(cold.blockBudget == Planner.coldBlocks(blocks: 400, selectivity: 1) && cold.blockBudget == 30)
        #expect(cold.source == .rule && cold.effort == 1 && !cold.exact && rule.hydration == .coldIDs)
        var fixed = tier
        fixed.fixedProbes = 1000
        let exact = try! #require(
            Planner.plan(input(cold: fixed, columns: ["year"]), calibration: RecallCalibration()) { _ in true }.cold)
        #expect(exact.exact && exact.blockBudget == 400 && exact.source == .fixedProbes)
        // A selective filter widens the budget by 1/√selectivity.
        var narrow = tier
        narrow.estimatedMatches = 400
        let filtered = try! #require(
            Planner.plan(input(matches: 1000, cold: narrow), calibration: RecallCalibration()) { _ in true }.cold)
        #expect(
            filtered.blockBudget == Planner.coldBlocks(blocks: 400, selectivity: 0.01) && filtered.blockBudget == 300)

        var both = RecallCalibration()
        both.adopt(
            BuildCalibration(
                curves: [0: curve([(0.5, 0.93), (1, 0.96), (2, 0.98)])], queries: 200, rows: 100_000,
                measuredAt: 0, target: 0.95, k: 10, seconds: 1,
                cold: curve([(1, 0.90), (2, 0.95), (4, 0.97)]), coldRows: 40_000, coldQueries: 100))
        let calibrated = Planner.plan(input(cold: tier, columns: ["year"]), calibration: both) { _ in true }
        #expect(calibrated.cold?.source == .calibrated && calibrated.cold!.effort > 2 && calibrated.cold!.effort < 4)
        #expect(calibrated.recallBasis == .overBothTiers(queries: 100))
        #expect(calibrated.expectedRecall == both.expectedOverBothTiers()!.recall)
        #expect(calibrated.hydration == .columns(["year"]))
        #expect(calibrated.description.contains("cold: at most") && calibrated.description.contains("hydrate: year"))
    }

    /// Never a silent shortfall over the cold tier: where the cold curve falls short of the target at its largest
    /// effort, the cold step goes exact when that opens at most `exactFallbackCostRatio` times the blocks the
    /// effort may, and the query expects what the curve's queries got with an exact cold step; explain says why.
    /// A curve that meets the target, or one recorded without its exact recall, plans as before.
    @Test func aColdStepThatFallsShortGoesExact() throws {
        let short = curve([(1, 0.40), (4, 0.60), (16, 0.75)])
        func calibration(
            _ points: [BuildCalibration.Point], exact: BuildCalibration.Exact?, filtered: Bool = false
        ) -> RecallCalibration {
            var c = RecallCalibration()
            c.adopt(
                BuildCalibration(
                    curves: [0: curve([(0.5, 0.93), (1, 0.96), (2, 0.98)])], queries: 200, rows: 40_000,
                    measuredAt: 0, target: 0.95, k: 10, seconds: 1, cold: points, coldRows: 160_000, coldQueries: 100,
                    coldFiltered: filtered
                        ? [.init(bucket: 3, selectivity: 0.1, ranksByCode: false, points: points, exact: exact)] : nil,
                    coldExact: exact))
            return c
        }
        let tier = QueryPlanInput.Cold(
            blocks: 10_000, liveRows: 160_000, estimatedMatches: 160_000, fixedProbes: nil, effort: 1)
        let exact = BuildCalibration.Exact(recall: 0.985, error: 0.003)
        let plan = Planner.plan(input(rows: 40_000, cold: tier), calibration: calibration(short, exact: exact)) { _ in
            true
        }
        let cold = try #require(plan.cold)
        #expect(cold.exact && cold.source == .exactForRecall && cold.blockBudget == 10_000, "\(cold)")
        #expect(plan.expectedRecall == 0.985)
        guard case .coldExactForRecall(100, let coldRecall, _) = plan.recallBasis else {
            Issue.record("\(plan.recallBasis)")
            return
        }
        #expect(abs(coldRecall - 0.75) < 1e-12)
        #expect(plan.recallBasis.description().contains("falls short of the target"))
        #expect(plan.description.contains("cold: exact, at most 10000 blocks"))
        // At 16 the rule may open 1.5 × 16 × √10,000 = 2,400 blocks: exact costs 4.2 times that, within the ratio.
        #expect(Double(tier.blocks) / Double(Planner.coldBlocks(blocks: 10_000, selectivity: 1, effort: 16)) < 32)
        // Where exact would open more than the ratio allows, the plan keeps the curve's effort and its shortfall.
        var huge = tier
        huge.blocks = 40_000_000
        huge.liveRows = 640_000_000
        let dear = Planner.plan(input(rows: 40_000, cold: huge), calibration: calibration(short, exact: exact)) { _ in
            true
        }
        #expect(dear.cold?.exact == false && dear.cold?.source == .calibrated, "\(dear)")
        guard case .coldShort(100, let shortBy, let ratio) = dear.recallBasis else {
            Issue.record("\(dear.recallBasis)")
            return
        }
        #expect(abs(shortBy - 0.2) < 1e-9 && ratio > 32)
        #expect(dear.recallBasis.description().contains("falls short of the target by 0.200"))
        #expect(abs(dear.expectedRecall - 0.75) < 1e-12)
        // A curve that meets the target, or one without its exact recall: as before.
        let meets = Planner.plan(
            input(rows: 40_000, cold: tier),
            calibration: calibration(curve([(1, 0.90), (2, 0.95), (4, 0.97)]), exact: exact)
        ) { _ in true }
        #expect(meets.cold?.exact == false && meets.cold?.source == .calibrated)
        let unrecorded = Planner.plan(input(rows: 40_000, cold: tier), calibration: calibration(short, exact: nil)) {
            _ in true
        }
        #expect(unrecorded.cold?.exact == false && unrecorded.recallBasis == .overBothTiers(queries: 100))
        // Where an exact cold step would fall short too (the hot step's misses), the plan keeps the curve's effort.
        let hotShort = Planner.plan(
            input(rows: 40_000, cold: tier),
            calibration: calibration(short, exact: BuildCalibration.Exact(recall: 0.9, error: 0.01))
        ) { _ in true }
        #expect(hotShort.cold?.exact == false && hotShort.recallBasis == .overBothTiers(queries: 100))
        // Under a filter with the hot rows exact: the curve under a filter falls short, and the step goes exact.
        var narrow = tier
        narrow.estimatedMatches = 16_000
        let filtered = Planner.plan(
            input(rows: 40_000, matches: 4_000, forced: .exact, cold: narrow),
            calibration: calibration(short, exact: exact, filtered: true)
        ) { _ in true }
        #expect(filtered.strategy == .exact && filtered.cold?.exact == true && filtered.cold?.source == .exactForRecall)
        #expect(filtered.expectedRecall == 0.985 && filtered.cold?.expectedWithExactHot == 0.985)
        // A curve whose points past 16 (modelled) meet the target: the step takes the scale between 16 and the
        // first that meets it, opens more blocks than at 16, says its effort is modelled, and does not go exact.
        let beyond = Planner.plan(
            input(rows: 40_000, cold: tier),
            calibration: calibration(short + curve([(22.6, 0.93), (32, 0.965)]), exact: exact)
        ) { _ in true }
        let reach = try #require(beyond.cold)
        #expect(!reach.exact && reach.source == .calibrated && reach.beyondMeasured, "\(reach)")
        #expect(reach.effort > 22.6 && reach.effort < 32, "\(reach)")
        #expect(reach.blockBudget > Planner.coldBlocks(blocks: 10_000, selectivity: 1, effort: 16))
        #expect(beyond.expectedRecall > 0.95 && beyond.expectedRecall < 0.965, "\(beyond)")
        #expect(beyond.recallBasis == .overBothTiers(queries: 100))
        #expect(!(meets.cold?.beyondMeasured ?? true))
        // Points past 16 say they are modelled (`hybridctl stats` prints "modelled recall" there); 16 was run.
        #expect(curve([(22.6, 0.93), (32, 0.965)]).allSatisfy(\.isModelled) && !short.contains(where: \.isModelled))
    }

    /// Under a filter with a graph-searched hot step, the cold step's curve (measured with the hot rows exact) is
    /// asked for the target plus what the hot step is expected to lose in its share of the matches, and the query
    /// expects the two together: each meeting the target alone let the whole query miss it (synth-200k, 80 %
    /// cold, a 50 % filter: 0.942).
    @Test func aGraphHotStepLeavesTheFilteredColdStepLessRoom() {
        let calibration = hotAndCold(
            coldFiltered: curve([(1 / 16, 0.80), (1 / 4, 0.90), (1, 0.955), (2, 0.965), (4, 0.975), (8, 0.99)]))
        let tier = QueryPlanInput.Cold(
            blocks: 400, liveRows: 160_000, estimatedMatches: 96_000, fixedProbes: nil, effort: 1)
        let plan = Planner.plan(input(rows: 40_000, matches: 24_000, cold: tier), calibration: calibration) { _ in true
        }
        #expect(plan.strategy != .exact, "\(plan)")
        let hot = try! #require(calibration.expected(selectivity: 0.6, filtered: true))
        let share = 24_000.0 / (24_000 + 96_000)
        let loss = share * (1 - hot.recall)
        let alone = try! #require(calibration.coldFiltered(selectivity: 0.6, ranksByCode: false))
        let raised = try! #require(
            calibration.coldFiltered(selectivity: 0.6, ranksByCode: false, target: 0.95 + loss))
        #expect(raised.scale > alone.scale && raised.recall > alone.recall, "\(raised) \(alone)")
        let cold = try! #require(plan.cold)
        #expect(cold.source == .calibratedFiltered && abs(cold.effort - raised.scale) < 1e-9)
        #expect(abs(plan.expectedRecall - (raised.recall - loss)) < 1e-9)
        #expect(plan.expectedRecall >= 0.95 + 1.645 * 0.004 - loss - 1e-9)
        #expect(plan.recallBasis == .bothCurves(hotQueries: 320, coldQueries: 100))
        #expect(plan.expectedRecallInterval! > raised.interval)
        // An exact hot step loses nothing: the cold curve alone, at the calibration's target.
        var exactHot = input(rows: 40_000, matches: 24_000, cold: tier)
        exactHot.forcedStrategy = .exact
        let exact = Planner.plan(exactHot, calibration: calibration) { _ in true }
        #expect(exact.strategy == .exact && abs(exact.cold!.effort - alone.scale) < 1e-9)
        #expect(exact.recallBasis == .overBothTiers(queries: 100) && exact.expectedRecall == alone.recall)
    }

    /// A filter's own cold curve (`ColdFilterCurve`, measured where the filter follows the data) sets the cold
    /// step's effort and the expectation in place of the build-time curves under a filter, asked for the hot step's
    /// loss on top of the target as they are; a caller's cold effort or probes leave it out; and where it falls
    /// short of what it is asked, the cold step goes exact as under a build-time curve.
    @Test func aFiltersOwnColdCurveSetsTheColdEffort() throws {
        let calibration = hotAndCold(coldFiltered: curve([(1 / 16, 0.97), (1 / 4, 0.98), (1, 0.99)]))
        let own = ColdFilterCurve(
            points: curve([(1 / 16, 0.70), (1 / 2, 0.90), (2, 0.96), (4, 0.975), (8, 0.99)]),
            exact: .init(recall: 0.995, error: 0.002), queries: 64, milliseconds: 12)
        var tier = QueryPlanInput.Cold(
            blocks: 400, liveRows: 160_000, estimatedMatches: 96_000, fixedProbes: nil, effort: 1)
        tier.spread = 0.5
        let random = Planner.plan(input(rows: 40_000, matches: 24_000, cold: tier), calibration: calibration) { _ in
            true
        }
        tier.ownCurve = own
        let plan = Planner.plan(input(rows: 40_000, matches: 24_000, cold: tier), calibration: calibration) { _ in true
        }
        #expect(plan.strategy != .exact, "\(plan)")
        let hot = try #require(calibration.expected(selectivity: 0.6, filtered: true))
        let loss = 24_000.0 / (24_000 + 96_000) * (1 - hot.recall)
        let read = try #require(own.reading(target: 0.95 + loss))
        let cold = try #require(plan.cold)
        #expect(cold.ownCurve == .init(queries: 64, milliseconds: 12))
        #expect(abs(cold.effort - read.scale) < 1e-9 && read.scale > 2 && read.scale < 4, "\(read)")
        #expect(abs(plan.expectedRecall - (read.recall - loss)) < 1e-9)
        #expect(plan.recallBasis == .bothCurves(hotQueries: 320, coldQueries: 64))
        // The hot step on the filter's own curve too: the two curves, the hot one's queries its own.
        let planned = try #require(plan.effort)
        let both = Planner.plan(
            input(rows: 40_000, matches: 24_000, cold: tier), calibration: calibration, probeAdvised: { _ in false },
            linkSpread: { 0.3 },
            filterCurve: { _ in
                FilterCurve(
                    points: [
                        .init(effort: planned, recall: 0.93, deviation: 0.08),
                        .init(effort: planned * 2, recall: 0.97, deviation: 0.08),
                    ], queries: 48, milliseconds: 9)
            })
        #expect(both.filterCurveUsed && both.effort! > planned, "\(both)")
        #expect(both.recallBasis == .bothCurves(hotQueries: 48, coldQueries: 64), "\(both.recallBasis)")
        #expect(both.steps[0].contains("from this filter's own curve"), "\(both.steps)")
        // The build-time curve under a filter would have asked for far less.
        #expect(random.cold?.ownCurve == nil && random.cold!.effort < 0.25, "\(random)")
        // The caller's effort on the cold step: the store's curves, not the filter's own.
        var scaled = tier
        scaled.effort = 2
        let caller = Planner.plan(input(rows: 40_000, matches: 24_000, cold: scaled), calibration: calibration) { _ in
            true
        }
        #expect(caller.cold?.ownCurve == nil)
        // An own curve short of the target: an exact cold step (at most 32× the blocks), expecting what the curve's
        // queries got with one.
        tier.ownCurve = ColdFilterCurve(
            points: curve([(1 / 16, 0.70), (1, 0.85), (16, 0.90)]), exact: .init(recall: 0.99, error: 0.003),
            queries: 64, milliseconds: 12)
        tier.estimatedMatches = 2_000
        let short = Planner.plan(input(rows: 40_000, matches: 24_000, cold: tier), calibration: calibration) { _ in
            true
        }
        #expect(short.cold?.exact == true && short.cold?.source == .exactForRecall, "\(short)")
        #expect(abs(short.cold!.expectedWithExactHot! - 0.99) < 1e-9)
    }
}
