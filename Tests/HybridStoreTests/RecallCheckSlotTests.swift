import Testing
import HybridStore

/// The background recall checks' slot: one at a time, within the rate, and within their share of one core.
@Suite struct RecallCheckSlotTests {
    let ms: UInt64 = 1_000_000

    func claimed(_ slot: inout RecallCheckSlot, at now: UInt64, interval: UInt64) -> Bool {
        slot.claim(now: now, interval: interval)
    }

    @Test func aCheckWaitsForItsShareOfOneCore() {
        var slot = RecallCheckSlot()
        #expect(claimed(&slot, at: 1000 * ms, interval: 50 * ms))
        #expect(!claimed(&slot, at: 1001 * ms, interval: 50 * ms))  // one at a time
        // A check of 10 ms at a 5 % share: the next no sooner than 190 ms after it ended.
        slot.finish(started: 1000 * ms, ended: 1010 * ms, share: 0.05)
        #expect(slot.checks == 1 && slot.nanos == 10 * ms && !slot.inFlight)
        #expect(slot.notBefore == 1200 * ms)
        #expect(!claimed(&slot, at: 1100 * ms, interval: 50 * ms))  // the rate allows it, the share does not
        #expect(claimed(&slot, at: 1200 * ms, interval: 50 * ms))
        // A quick check: the rate decides.
        slot.finish(started: 1200 * ms, ended: 1200 * ms + 100_000, share: 0.05)
        #expect(!claimed(&slot, at: 1230 * ms, interval: 50 * ms))
        #expect(claimed(&slot, at: 1250 * ms, interval: 50 * ms))
    }

    @Test func aWholeShareOnlyKeepsOneAtATime() {
        var slot = RecallCheckSlot()
        #expect(claimed(&slot, at: 5 * ms, interval: 0))
        slot.finish(started: 5 * ms, ended: 505 * ms, share: 1)
        #expect(claimed(&slot, at: 505 * ms, interval: 0))
        // Out-of-range shares are clamped, never a division by zero or an endless wait.
        slot.finish(started: 505 * ms, ended: 506 * ms, share: 0)
        #expect(slot.notBefore > 506 * ms && slot.notBefore <= 506 * ms + 3_600_000 * ms)
        slot.finish(started: 506 * ms, ended: 507 * ms, share: 7)
        #expect(slot.notBefore == 507 * ms)
    }

    /// A check that recorded nothing (skipped as the store closed, or its search failed) frees the slot and spaces
    /// the next, but is not counted among the checks that ran.
    @Test func aCheckThatMeasuredNothingIsNotCounted() {
        var slot = RecallCheckSlot()
        #expect(claimed(&slot, at: 10 * ms, interval: 0))
        slot.finish(started: 10 * ms, ended: 20 * ms, share: 0.5, measured: false)
        #expect(slot.checks == 0 && slot.nanos == 0 && !slot.inFlight)
        #expect(slot.notBefore == 30 * ms)
        #expect(claimed(&slot, at: 30 * ms, interval: 0))
        slot.finish(started: 30 * ms, ended: 32 * ms, share: 0.5)
        #expect(slot.checks == 1 && slot.nanos == 2 * ms)
    }
}
