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
