import HybridStore
import QueryPlanner
import Testing

/// A filter's link spread is read from the graph once and taken again until a twentieth of the rows (at least 64)
/// has been written since; each filter (with its literals) has its own; a spread the graph could not tell (nil) is
/// remembered as such; past the capacity, all are dropped.
@Suite struct LinkSpreadMemoryTests {
    @Test func aSpreadIsTakenAgainUntilATwentiethOfTheRowsIsWritten() {
        var memory = LinkSpreadMemory()
        let wide = Column("grp") < 4, other = Column("grp") < 3
        #expect(memory.spread(of: wide, rows: 10_000, written: 0) == nil)
        memory.record(wide, 0.31, written: 100)
        #expect(memory.spread(of: wide, rows: 10_000, written: 100) == .some(0.31))
        #expect(memory.spread(of: wide, rows: 10_000, written: 600) == .some(0.31))
        #expect(memory.spread(of: wide, rows: 10_000, written: 601) == nil)
        #expect(memory.spread(of: wide, rows: 100, written: 164) == .some(0.31))
        #expect(memory.spread(of: wide, rows: 100, written: 165) == nil)
        #expect(memory.spread(of: other, rows: 10_000, written: 100) == nil)
        memory.record(other, nil, written: 100)
        #expect(memory.spread(of: other, rows: 10_000, written: 100) == .some(nil))
        for i in 0..<LinkSpreadMemory.capacity { memory.record(Column("r") < .integer(Int64(i)), 1, written: 100) }
        #expect(memory.count <= LinkSpreadMemory.capacity)
        #expect(memory.spread(of: wide, rows: 10_000, written: 100) == nil)
    }

    /// A filter's own curve is of recall@k up to where it meets a target: remembered per filter, k and target.
    @Test func aFiltersCurveIsRememberedPerKAndTarget() {
        var memory = FilterMemory<FilterCurveKey, FilterCurve?>()
        let wide = Column("grp") < 4
        let curve = FilterCurve(efforts: [30], recalls: [[1, 0.9]], milliseconds: 20)
        memory.record(FilterCurveKey(filter: wide, k: 10, target: 0.95), curve, written: 0)
        #expect(memory.value(of: FilterCurveKey(filter: wide, k: 10, target: 0.95), rows: 1000, written: 64) == curve)
        #expect(memory.value(of: FilterCurveKey(filter: wide, k: 10, target: 0.99), rows: 1000, written: 0) == nil)
        #expect(memory.value(of: FilterCurveKey(filter: wide, k: 20, target: 0.95), rows: 1000, written: 0) == nil)
        #expect(memory.value(of: FilterCurveKey(filter: wide, k: 10, target: 0.95), rows: 1000, written: 65) == nil)
    }
}
