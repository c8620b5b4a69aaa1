// A filter's own curve for the cold step (`ColdFilterCurve`): measured once for a filter that follows the data over
// the cold tier, the first time a query under it is planned, and remembered.

import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// Hot rows a filter's own cold curve takes as queries: 100, as the build-time cold curves do (50 left a curve
    /// 0.015 above what 300 fresh queries got, aniso2-200k, 80 % cold, `grp = 3`; 150 within 0.006), fewer where
    /// their exact answers would take more than about 16 million distance computations (a quarter of a second on
    /// 96-d rows); at least 24.
    static func coldFilterCurveQueries(matches: Int) -> Int { min(100, max(24, 16_000_000 / max(matches, 1))) }

    /// The filter's own cold curve (`ColdFilterCurve`), measured as the build-time cold curves are (`coldCurves`):
    /// hot rows drawn at a coprime stride (under a tenant's scope, the tenant's rows: its queries are about its own
    /// data) each answered exactly among the filter's hot matches, itself left out, then by the cold step under the
    /// filter at rising efforts, up to where the curve passes `target` beyond doubt. Nil where the filter's columns
    /// are not all in memory for both tiers, fewer than 20 rows could be drawn, or a cold block cannot be read.
    /// Takes the collection's lock for the hot answers, and the cold tier's pass and steps outside it.
    func measureColdFilterCurve(
        _ s: CollectionState, _ filter: Filter, within scope: Filter?, k: Int, target: Double
    ) -> ColdFilterCurve? {
        let started = nowNanos()
        let prepared: (answers: [CalibrationRun.HotAnswer], slots: ColdSlotFilter)? = s.query { index, columns, _ in
            let tier = s.cold
            guard tier.liveRows > 0, tier.columns.covers(filter), columns.covers(filter) else { return nil }
            let coldPredicate = tier.columns.predicate(filter)
            let coldMatches = tier.columns.estimate(filter)
            let hotMatches = columns.collect(filter, predicate: columns.predicate(filter))
            let count = Self.coldFilterCurveQueries(matches: hotMatches.count + Int(coldMatches))
            let picked = index.strideSample(count, drawnFrom: scope.map { columns.predicate($0) })
            let answers = picked.map { query in
                let nearest = (try? index.exactSearch(query.vector, k: k + 1, candidates: hotMatches).hits) ?? []
                let exact = nearest.filter { $0.node != query.node }.prefix(k).map {
                    (row: Int64(bitPattern: $0.label), distance: $0.distance)
                }
                return CalibrationRun.HotAnswer(vector: query.vector, hits: exact, exact: exact)
            }
            let slots = ColdSlotFilter(
                rowOfSlot: tier.rowOfSlot, selectivity: coldMatches / Double(tier.liveRows),
                matchesSlot: { coldPredicate(UInt32($0)) })
            return (answers, slots)
        }
        guard let prepared, prepared.answers.count >= 20,
            let curve = coldCurves(
                s,
                [ColdCurveRequest(answers: prepared.answers, slots: prepared.slots, efforts: Self.coldFilteredEfforts)],
                k: k, target: target
            ).first ?? nil
        else { return nil }
        return ColdFilterCurve(
            points: curve.points, exact: curve.exact, queries: prepared.answers.count, milliseconds: ms(since: started))
    }
}
