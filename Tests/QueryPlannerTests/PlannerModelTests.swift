import Foundation
import Testing
import QueryPlanner

@Suite struct PlannerModelTests {
    @Test func calibrationRaisesEffortWhenRecallFallsShortAndLowersItWhenItOverDelivers() {
        var c = RecallCalibration()
        // 63 samples decide nothing; the 64th closes the window.
        for _ in 0..<63 {
            let changed = c.record(recall: 0.8, selectivity: 0.03, filtered: true, target: 0.95)
            #expect(!changed)
        }
        let changed = c.record(recall: 0.8, selectivity: 0.03, filtered: true, target: 0.95)
        #expect(changed)
        let raised = c.scale(selectivity: 0.03, filtered: true)
        #expect(raised > 1.4 && raised <= 2)  // far below: a big step
        // Other buckets are untouched.
        #expect(c.scale(selectivity: 0.6, filtered: true) == 1 && c.scale(selectivity: 1, filtered: false) == 1)
        // Noisy samples whose mean (0.955) is within [target, target + slack]: no change.
        for i in 0..<128 { c.record(recall: i % 2 == 0 ? 0.92 : 0.99, selectivity: 0.03, filtered: true, target: 0.95) }
        #expect(c.scale(selectivity: 0.03, filtered: true) == raised)
        // Over-delivering: lowered, never below the floor.
        for _ in 0..<(64 * 40) { c.record(recall: 1, selectivity: 1, filtered: false, target: 0.95) }
        #expect(c.scale(selectivity: 1, filtered: false) == RecallCalibration.minScale)
        // Never above the ceiling.
        for _ in 0..<(64 * 40) { c.record(recall: 0, selectivity: 0.001, filtered: true, target: 0.95) }
        #expect(c.scale(selectivity: 0.001, filtered: true) == RecallCalibration.maxScale)
    }

    /// A build-time curve sets each bucket's scale where the curve meets the target with 95 % confidence
    /// (recall − 1.645 standard errors), between measured efforts, below the static model's effort where the
    /// data is easy as well as above it where it is hard; the expected recall then reads back from the curve
    /// with an interval for 100 queries' mean that is wider than the curve's own error.
    @Test func aBuildTimeCurveSetsTheScaleWhereItMeetsTheTarget() {
        func curve(_ points: [(Double, Double)]) -> [BuildCalibration.Point] {
            points.map { BuildCalibration.Point(scale: $0.0, recall: $0.1, error: 0.004) }
        }
        var c = RecallCalibration()
        let easy = curve([(0.25, 0.90), (0.5, 0.94), (1, 0.97), (2, 0.99)])
        let hard = curve([(1, 0.80), (2, 0.90), (4, 0.94), (8, 0.966)])
        c.adopt(
            BuildCalibration(
                curves: [0: easy, 3: hard], queries: 400, rows: 10_000, measuredAt: 0, target: 0.95,
                k: 10, seconds: 1))
        // Easy: 0.94 − 0.0066 at 0.5 and 0.97 − 0.0066 at 1 → the target at 2^(−1 + 0.0166/0.03) ≈ 0.73.
        let lowered = c.scale(selectivity: 1, filtered: false)
        #expect(abs(lowered - exp2(-1 + (0.95 - (0.94 - 1.645 * 0.004)) / 0.03)) < 1e-9, "\(lowered)")
        let expected = try! #require(c.expected(selectivity: 1, filtered: false))
        #expect(abs(expected.recall - (0.95 + 1.645 * 0.004)) < 1e-9)
        #expect(expected.interval > 1.96 * expected.error * 2.0.squareRoot())  // 400 curve queries, then 100 more
        // Hard: between 4 and 8.
        let raised = c.scale(selectivity: 0.1, filtered: true)
        #expect(raised > 4 && raised < 8, "\(raised)")
        // Unmeasured buckets keep the static model.
        #expect(c.scale(selectivity: 0.3, filtered: true) == 1)
        // A curve that never meets the target and still rises takes its largest effort, and expects what it
        // measured there.
        var short = RecallCalibration()
        short.adopt(
            BuildCalibration(
                curves: [0: curve([(1, 0.7), (4, 0.8), (8, 0.85)])], queries: 100, rows: 10_000,
                measuredAt: 0, target: 0.95, k: 10, seconds: 1))
        #expect(short.scale(selectivity: 1, filtered: false) == 8)
        #expect(short.expected(selectivity: 1, filtered: false)?.recall == 0.85)
        // One that levels off below it takes the effort where it levelled (within 0.002 of the largest's
        // recall), not the largest, which would buy nothing measurable; the cold curve likewise.
        let levelled = curve([(0.5, 0.80), (1, 0.90), (2, 0.940), (4, 0.9435), (8, 0.944), (16, 0.944)])
        #expect(RecallCalibration.scale(meeting: 0.95, on: levelled) == 4)
        var flat = RecallCalibration()
        flat.adopt(
            BuildCalibration(
                curves: [0: levelled], queries: 100, rows: 10_000, measuredAt: 0, target: 0.95, k: 10, seconds: 1,
                cold: levelled, coldRows: 5_000, coldQueries: 100))
        #expect(flat.scale(selectivity: 1, filtered: false) == 4)
        #expect(flat.coldScale == 4)
        #expect(abs((flat.expectedOverBothTiers()?.recall ?? 0) - 0.9435) < 1e-12)
    }

    /// A filtered query's cold effort comes from a curve under a filter measured the way its cold step will go
    /// (ranking every matching row by code, or picking blocks by centroid) in its selectivity bucket; else from
    /// the nearest selectivity measured that way; else from its bucket's. Below the hot scales' floor where the
    /// curve says so.
    @Test func aFilteredColdStepTakesTheCurveMeasuredItsWay() {
        func curve(_ points: [(Double, Double)]) -> [BuildCalibration.Point] {
            points.map { BuildCalibration.Point(scale: $0.0, recall: $0.1, error: 0.004) }
        }
        let centroid = curve([(0.25, 0.80), (1, 0.90), (2, 0.94), (4, 0.97), (16, 0.98)])
        let byCode = curve([(1 / 16, 0.90), (1 / 8, 0.97), (1 / 4, 0.99)])
        let byCodeWide = curve([(1 / 16, 0.80), (1 / 4, 0.90), (1 / 2, 0.97), (1, 0.99)])
        func calibration(_ curves: [BuildCalibration.ColdFilteredCurve]) -> RecallCalibration {
            var c = RecallCalibration()
            c.adopt(
                BuildCalibration(
                    curves: [0: centroid], queries: 100, rows: 4_000, measuredAt: 0, target: 0.95, k: 10,
                    seconds: 1, cold: centroid, coldRows: 16_000, coldQueries: 100, coldFiltered: curves))
            return c
        }
        let c = calibration([
            .init(bucket: 1, selectivity: 0.6, ranksByCode: false, points: centroid),
            .init(bucket: 1, selectivity: 0.55, ranksByCode: true, points: byCodeWide),
            .init(bucket: 2, selectivity: 0.35, ranksByCode: true, points: byCode),
            .init(bucket: 3, selectivity: 0.1, ranksByCode: true, points: byCode),
        ])
        let sixty = try! #require(c.coldFiltered(selectivity: 0.6, ranksByCode: false))
        #expect(sixty.scale > 2 && sixty.scale < 4, "\(sixty)")
        // 50 % ranked by code: bucket 1's curve measured that way, not its centroid one nor the 35 % one.
        let fifty = try! #require(c.coldFiltered(selectivity: 0.5, ranksByCode: true))
        #expect(fifty.scale > 1 / 4 && fifty.scale < 1 / 2, "\(fifty)")
        #expect(fifty.recall >= 0.95 + 1.645 * 0.004 - 1e-9 && fifty.recall < 0.97)
        // Between the 55 % and the 35 % curves measured by code, the two are blended by nearness in log selectivity:
        // a 49 % filter (bucket 2, whose own curve meets the target at about 1/9) takes nearly the 55 % curve's
        // effort, and expects what the blend does at it; nearer 35 %, the effort falls toward that curve's.
        let underEdge = try! #require(c.coldFiltered(selectivity: 0.49, ranksByCode: true))
        #expect(underEdge.scale > 1 / 4 && underEdge.scale <= fifty.scale, "\(underEdge) \(fifty)")
        #expect(underEdge.recall >= 0.95 + 1.645 * 0.004 - 1e-9 && underEdge.recall < 0.97)
        let nearer35 = try! #require(c.coldFiltered(selectivity: 0.37, ranksByCode: true))
        let at35 = try! #require(c.coldFiltered(selectivity: 0.35, ranksByCode: true))
        #expect(nearer35.scale < underEdge.scale && nearer35.scale > at35.scale, "\(nearer35) \(at35)")
        #expect(at35.scale > 1 / 16 && at35.scale < 1 / 8)
        // Its bucket has no curve measured its way: the nearest selectivity that has (35 %, not 10 %), below the
        // hot scales' floor.
        let withoutWay = calibration([
            .init(bucket: 1, selectivity: 0.6, ranksByCode: false, points: centroid),
            .init(bucket: 2, selectivity: 0.35, ranksByCode: true, points: byCode),
            .init(bucket: 3, selectivity: 0.1, ranksByCode: true, points: byCodeWide),
        ])
        let borrowed = try! #require(withoutWay.coldFiltered(selectivity: 0.5, ranksByCode: true))
        #expect(borrowed.scale > 1 / 16 && borrowed.scale < 1 / 8 && borrowed.scale < RecallCalibration.minScale)
        // No curve measured its way at all: its bucket's.
        let codeOnly = calibration([.init(bucket: 3, selectivity: 0.1, ranksByCode: true, points: centroid)])
        #expect(codeOnly.coldFiltered(selectivity: 0.1, ranksByCode: false)?.scale == sixty.scale)
        #expect(codeOnly.coldFiltered(selectivity: 0.6, ranksByCode: false) == nil)
        // Without curves under a filter, none.
        #expect(RecallCalibration().coldFiltered(selectivity: 0.5, ranksByCode: true) == nil)
    }

    /// Under a filter that follows the data (its cold rows gathered in few blocks: a spread well under 1), the
    /// cold step takes the curve measured under such a filter, blended with the one drawn at random by where its
    /// spread lies in log spread between 1 and that curve's; drawn at random, or not told, the random one alone.
    /// Only a curve measured the query's way, in its bucket or on either side of its selectivity, is taken.
    @Test func aFilterFollowingTheDataTakesItsOwnCurve() {
        func curve(_ points: [(Double, Double)]) -> [BuildCalibration.Point] {
            points.map { BuildCalibration.Point(scale: $0.0, recall: $0.1, error: 0.004) }
        }
        let drawn = curve([(1 / 16, 0.90), (1 / 8, 0.97), (1 / 4, 0.99), (1, 0.995)])
        let following = curve([(1 / 16, 0.80), (1 / 4, 0.90), (1, 0.97), (4, 0.99)])
        var c = RecallCalibration()
        c.adopt(
            BuildCalibration(
                curves: [0: drawn], queries: 100, rows: 4_000, measuredAt: 0, target: 0.95, k: 10, seconds: 1,
                cold: drawn, coldRows: 16_000, coldQueries: 100,
                coldFiltered: [
                    .init(bucket: 3, selectivity: 0.1, ranksByCode: true, points: drawn),
                    .init(
                        bucket: 3, selectivity: 0.1, ranksByCode: true, points: following,
                        exact: .init(recall: 1, error: 0), spread: 0.1),
                ]))
        let random = try! #require(c.coldFiltered(selectivity: 0.1, ranksByCode: true))
        #expect(random.scale > 1 / 16 && random.scale < 1 / 8, "\(random)")
        #expect(c.coldFiltered(selectivity: 0.1, ranksByCode: true, spread: 1)?.scale == random.scale)
        let gathered = try! #require(c.coldFiltered(selectivity: 0.1, ranksByCode: true, spread: 0.1))
        #expect(gathered.scale > 1 / 4 && gathered.scale < 1, "\(gathered)")
        #expect(gathered.recall >= 0.95 + 1.645 * 0.004 - 1e-9 && gathered.recall < 0.97, "\(gathered)")
        #expect(gathered.followed && !random.followed)
        // Sparser than the curve's: that curve alone. Halfway in log spread: between the two.
        #expect(c.coldFiltered(selectivity: 0.1, ranksByCode: true, spread: 0.01)?.scale == gathered.scale)
        let between = try! #require(c.coldFiltered(selectivity: 0.1, ranksByCode: true, spread: 0.1.squareRoot()))
        #expect(between.scale > random.scale && between.scale < gathered.scale, "\(between)")
        // The exact step's expectation: the one curve that records it, blended in by the same weight only where
        // both do.
        #expect(gathered.exact == nil && random.exact == nil)
        // A wider filter, whose bucket has no curve following the data: the random one's, not the 10 % one's.
        let wide = try! #require(c.coldFiltered(selectivity: 0.5, ranksByCode: true, spread: 0.1))
        #expect(wide.scale == c.coldFiltered(selectivity: 0.5, ranksByCode: true)?.scale && !wide.followed)
        // Picking blocks by centroid, no curve following the data was measured that way: the random one's.
        #expect(
            c.coldFiltered(selectivity: 0.1, ranksByCode: false, spread: 0.1)?.scale
                == c.coldFiltered(selectivity: 0.1, ranksByCode: false)?.scale)
    }

    /// Between two buckets measured at build time, a query's effort and expected recall are interpolated in log
    /// selectivity between their representatives' (60 % and 35 %), so a 50 % filter estimated just under the
    /// bucket edge neither takes the easier 35 % curve's effort nor promises what that curve does; a bucket whose
    /// curve was borrowed from the unfiltered one (the planner answers it exactly) is not blended with.
    @Test func aSelectivityBetweenMeasuredBucketsTakesTheEffortBetweenThem() {
        func curve(_ points: [(Double, Double)]) -> [BuildCalibration.Point] {
            points.map { BuildCalibration.Point(scale: $0.0, recall: $0.1, error: 0.004) }
        }
        let unfiltered = curve([(0.5, 0.93), (1, 0.96), (2, 0.98)])
        let sixty = curve([(2, 0.90), (4, 0.93), (8, 0.94), (16, 0.96)])
        let thirtyFive = curve([(1, 0.93), (2, 0.96), (4, 0.98)])
        var c = RecallCalibration()
        c.adopt(
            BuildCalibration(
                curves: [0: unfiltered, 1: sixty, 2: thirtyFive, 3: unfiltered], queries: 400, rows: 100_000,
                measuredAt: 0, target: 0.95, k: 10, seconds: 1))
        let at60 = c.scale(selectivity: 0.6, filtered: true)
        let at35 = c.scale(selectivity: 0.35, filtered: true)
        #expect(at60 > 8 && at60 < 16 && at35 > 1 && at35 < 2, "\(at60) \(at35)")
        // 0.4999 is in the 20–50 % bucket, but 0.338 of the way from 60 % to 35 % in log selectivity.
        let t = log(0.6 / 0.4999) / log(0.6 / 0.35)
        let between = c.scale(selectivity: 0.4999, filtered: true)
        #expect(abs(log2(between) - ((1 - t) * log2(at60) + t * log2(at35))) < 1e-9, "\(between)")
        let expected = try! #require(c.expected(selectivity: 0.4999, filtered: true))
        let sixtyThere = RecallCalibration.read(sixty, at: between, queries: 400)!.recall
        let thirtyFiveThere = RecallCalibration.read(thirtyFive, at: between, queries: 400)!.recall
        #expect(abs(expected.recall - ((1 - t) * sixtyThere + t * thirtyFiveThere)) < 1e-9)
        #expect(expected.recall < RecallCalibration.read(thirtyFive, at: at35, queries: 400)!.recall)
        // Above 60 %: between the unfiltered curve and the 60 % one.
        let ninety = c.scale(selectivity: 0.9, filtered: true)
        #expect(ninety > c.scale(selectivity: 1, filtered: false) && ninety < at60)
        // Between 35 % and 10 %, bucket 3's curve is the unfiltered one (borrowed): each keeps its bucket's scale.
        #expect(c.scale(selectivity: 0.3, filtered: true) == at35)
        #expect(c.scale(selectivity: 0.15, filtered: true) == c.scale(selectivity: 1, filtered: false))
        // Unfiltered queries are never blended.
        #expect(c.scale(selectivity: 0.5, filtered: false) == c.scale(selectivity: 1, filtered: false))
    }

    /// Checks that also measure the recall curve let one window jump to the smallest effort that meets the
    /// target (up when short, down when over-delivering), where single points would creep; a curve that is
    /// flat below the target (effort does not help) leaves the scale alone, one still rising moves it up.
    @Test func aMeasuredRecallCurveStepsStraightToTheTarget() {
        var c = RecallCalibration()
        let multipliers = RecallCalibration.curveMultipliers
        // Recall rises with effort: 0.80 + 0.12 × m (0.944 at 1.2, 0.974 at 1.45), with a little noise.
        for i in 0..<63 {
            let noise = i % 2 == 0 ? 0.005 : -0.005
            let changed = c.record(
                curve: multipliers.map { min(1, 0.80 + 0.12 * $0 + noise) }, selectivity: 1, filtered: false,
                target: 0.95)
            #expect(!changed)
        }
        let changed = c.record(
            curve: multipliers.map { min(1, 0.80 + 0.12 * $0) }, selectivity: 1, filtered: false, target: 0.95)
        #expect(changed)
        #expect(abs(c.scale(selectivity: 1, filtered: false) - 1.41) < 0.01)  // the bin of 1.45: 2^(4/8)
        // Easy data: every measured effort over-delivers, so the scale drops to the smallest measured at once.
        for _ in 0..<64 {
            c.record(curve: multipliers.map { _ in 0.99 }, selectivity: 0.3, filtered: true, target: 0.95)
        }
        #expect(abs(c.scale(selectivity: 0.3, filtered: true) - 0.39) < 0.01)  // the bin of 0.4: 2^(-11/8)
        // Flat and short of the target: more effort would not help, so the scale stays.
        for _ in 0..<64 {
            c.record(curve: multipliers.map { _ in 0.5 }, selectivity: 0.001, filtered: true, target: 0.95)
        }
        #expect(c.scale(selectivity: 0.001, filtered: true) == 1)
        // Rising but short everywhere: half again the largest effort measured.
        for _ in 0..<64 {
            c.record(curve: multipliers.map { 0.5 + 0.1 * $0 }, selectivity: 0.1, filtered: true, target: 0.95)
        }
        #expect(abs(c.scale(selectivity: 0.1, filtered: true) - 3) < 0.01)
    }

    /// A larger effort whose bin measures below the target by chance (0.945 at 1.45 between 0.97 at 1.2 and
    /// 0.99 at 2) is pooled with its neighbour instead of pushing the choice above it: the smallest effort
    /// that meets the target (1, at 0.955) is kept. A bin that truly misses still counts: pooled with a
    /// smaller bin that met the target, the block falls short and the choice moves past it.
    @Test func aChanceDipAtALargerEffortDoesNotRaiseTheChoice() {
        var c = RecallCalibration()
        let dip = [0.80, 0.85, 0.90, 0.94, 0.955, 0.97, 0.945, 0.99]
        for _ in 0..<64 { c.record(curve: dip, selectivity: 1, filtered: false, target: 0.95) }
        #expect(c.scale(selectivity: 1, filtered: false) == 1)
        // Here the block of 1 and 1.2 (0.955, 0.93) averages 0.9425 < 0.95: the next block (1.45 on) decides.
        var d = RecallCalibration()
        let miss = [0.80, 0.85, 0.90, 0.94, 0.955, 0.93, 0.97, 0.99]
        for _ in 0..<64 { d.record(curve: miss, selectivity: 1, filtered: false, target: 0.95) }
        #expect(abs(d.scale(selectivity: 1, filtered: false) - 1.41) < 0.01)  // the bin of 1.45: 2^(4/8)
    }

    @Test func theScaleMovesThePlannedEffortUnlessTheCallerFixesIt() {
        let base = PlanInput(rows: 1_000_000, estimatedMatches: 1_000_000, hasFilter: false, k: 10, dimensions: 128)
        var scaled = base
        scaled.effortScale = 1.5
        #expect(Planner.choose(base).effort == 80)
        #expect(Planner.choose(scaled).effort == 120)
        scaled.searchEffort = 33
        #expect(Planner.choose(scaled).effort == 33)
        // Under a filter the scaled effort also prices the filtered graph: more effort, more cost.
        let filtered = PlanInput(rows: 1_000_000, estimatedMatches: 200_000, hasFilter: true, k: 10, dimensions: 128)
        var filteredScaled = filtered
        filteredScaled.effortScale = 2
        #expect(Planner.choose(filteredScaled).effort! > Planner.choose(filtered).effort!)
        #expect(
            Planner.choose(filteredScaled).alternatives["filtered_graph"]! > Planner.choose(filtered).alternatives[
                "filtered_graph"]!)
    }
}
