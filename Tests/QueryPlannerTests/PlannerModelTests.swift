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

    /// Checks that also measure the recall curve let one window jump to the smallest effort that meets the
    /// target (up when short, down when over-delivering), where single points would creep; a curve that is
    /// flat below the target (effort does not help) leaves the scale alone, one still rising moves it up.
    @Test func aMeasuredRecallCurveStepsStraightToTheTarget() {
        var c = RecallCalibration()
        let multipliers = RecallCalibration.curveMultipliers
        // Recall rises with effort: 0.80 + 0.12 × m (0.944 at 1.2, 0.974 at 1.45), with a little noise.
        for i in 0..<63 {
            let noise = i % 2 == 0 ? 0.005 : -0.005
            let changed = c.record(curve: multipliers.map { min(1, 0.80 + 0.12 * $0 + noise) }, selectivity: 1, filtered: false, target: 0.95)
            #expect(!changed)
        }
        let changed = c.record(curve: multipliers.map { min(1, 0.80 + 0.12 * $0) }, selectivity: 1, filtered: false, target: 0.95)
        #expect(changed)
        #expect(abs(c.scale(selectivity: 1, filtered: false) - 1.41) < 0.01)  // the bin of 1.45: 2^(4/8)
        // Easy data: every measured effort over-delivers, so the scale drops to the smallest measured at once.
        for _ in 0..<64 { c.record(curve: multipliers.map { _ in 0.99 }, selectivity: 0.3, filtered: true, target: 0.95) }
        #expect(abs(c.scale(selectivity: 0.3, filtered: true) - 0.39) < 0.01)  // the bin of 0.4: 2^(-11/8)
        // Flat and short of the target: more effort would not help, so the scale stays.
        for _ in 0..<64 { c.record(curve: multipliers.map { _ in 0.5 }, selectivity: 0.001, filtered: true, target: 0.95) }
        #expect(c.scale(selectivity: 0.001, filtered: true) == 1)
        // Rising but short everywhere: half again the largest effort measured.
        for _ in 0..<64 { c.record(curve: multipliers.map { 0.5 + 0.1 * $0 }, selectivity: 0.1, filtered: true, target: 0.95) }
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
        #expect(Planner.choose(filteredScaled).alternatives["filtered_graph"]! > Planner.choose(filtered).alternatives["filtered_graph"]!)
    }
}
