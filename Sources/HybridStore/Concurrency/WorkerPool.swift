import CKernels
import Foundation
import HNSW
import Synchronization

/// Threads the store owns, fed from one queue: the async API runs its calls here, so a caller on the Swift
/// cooperative pool never blocks one of that pool's few threads on SQLite or a graph search.
///
/// Jobs run in submission order, at most `threads` at once. `stop()` lets the queued and running jobs
/// finish and ends the threads; a job submitted after it runs on the submitting thread (it finds the store
/// closed and fails, which is what a call on a closed store does).
package final class WorkerPool: Sendable {
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        var stopping = false
        var idle = 0

        mutating func pop() -> (@Sendable () -> Void)? {
            guard head < jobs.count else { return nil }
            let job = jobs[head]
            head += 1
            if head >= 64 && head * 2 >= jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    let name: String
    let threads: Int
    private let queue = Locked(Queue())
    // NSCondition pairs a pthread mutex and condition variable, which ThreadSanitizer understands; the
    // queue's own lock keeps the jobs, this one only parks and wakes threads.
    private let wakeup = NSCondition()
    private let pending = Atomic<Int>(0)
    /// Threads parked on `wakeup`; only touched holding it (so a submit signals only when one sleeps).
    nonisolated(unsafe) private var sleeping = 0

    /// The longest a thread spins for the next job (`spinNanos` unless the pool asks for more).
    private let maxSpinNanos: UInt64
    /// When the last job was submitted, and a moving average of the gaps between submissions (ns): a pool with a
    /// longer `maxSpinNanos` spins for up to twice the recent gap, so jobs that keep coming find a thread
    /// awake and a pool that is called rarely sleeps after `spinNanos`.
    private let lastSubmit = Atomic<UInt64>(0)
    private let meanGap = Atomic<UInt64>(.max)

    init(name: String, threads: Int, maxSpinNanos: UInt64 = WorkerPool.spinNanos) {
        self.name = name
        self.threads = max(1, threads)
        self.maxSpinNanos = max(maxSpinNanos, Self.spinNanos)
        for i in 0..<self.threads {
            let thread = Thread { [self] in run() }
            thread.name = "\(name)-\(i)"
            thread.start()
        }
    }

    /// Jobs waiting for a thread (for metrics and the benchmark).
    var queued: Int { pending.load(ordering: .relaxed) }

    func submit(_ job: @escaping @Sendable () -> Void) {
        let accepted = queue.withLock { q -> Bool in
            guard !q.stopping else { return false }
            q.jobs.append(job)
            return true
        }
        guard accepted else { return job() }
        pending.add(1, ordering: .relaxed)
        if maxSpinNanos > Self.spinNanos {  // races between submitters only blur the average
            let now = DispatchTime.now().uptimeNanoseconds
            let last = lastSubmit.exchange(now, ordering: .relaxed)
            let gap = last == 0 ? UInt64.max : now - last
            let mean = meanGap.load(ordering: .relaxed)
            meanGap.store(
                mean == .max || gap == .max ? gap : mean - mean / 4 + gap / 4, ordering: .relaxed)
        }
        wakeup.lock()
        if unsafe sleeping > 0 { wakeup.signal() }
        wakeup.unlock()
    }

    func stop() {
        queue.withLock { $0.stopping = true }
        wakeup.lock()
        wakeup.broadcast()
        wakeup.unlock()
    }

    /// The name of the pool whose thread this is (nil off the store's threads).
    package static var current: String? { Thread.current.threadDictionary[poolKey] as? String }
    private static let poolKey = "HybridStore.WorkerPool"

    /// How long a thread that ran out of jobs looks for the next before it sleeps. A caller that awaits one call
    /// after another submits the next within microseconds, and waking a sleeping thread costs a futex round trip
    /// (tens of µs on a busy 2-core machine) per call; `hybrid-bench concurrent` measures the difference.
    static let spinNanos: UInt64 = 50_000

    private func run() {
        Thread.current.threadDictionary[Self.poolKey] = name
        while true {
            guard let job = spinForJob() ?? waitForJob() else { return }
            pending.subtract(1, ordering: .relaxed)
            job()
        }
    }

    private func spinForJob() -> (@Sendable () -> Void)? {
        let gap = meanGap.load(ordering: .relaxed)
        let spin = min(maxSpinNanos, max(Self.spinNanos, gap == .max ? 0 : 2 * gap))
        let deadline = DispatchTime.now().uptimeNanoseconds + spin
        var round = 0
        repeat {
            // Only the counter is read while nothing is pending (the queue's lock is the submitters' too), and
            // the spin pauses between reads, so a spinning thread takes little from a query running beside it.
            if pending.load(ordering: .relaxed) > 0 || round % 64 == 0 {
                let (job, stopping) = queue.withLock { q in (q.pop(), q.stopping) }
                if let job { return job }
                if stopping { return nil }
            }
            round += 1
            if round % 16 == 0 {
                sched_yield()  // others runnable on this core go first
            } else {
                for _ in 0..<8 { hs_spin_pause() }
            }
        } while DispatchTime.now().uptimeNanoseconds < deadline
        return nil
    }

    private func waitForJob() -> (@Sendable () -> Void)? {
        wakeup.lock()
        defer { wakeup.unlock() }
        unsafe sleeping += 1
        defer { unsafe sleeping -= 1 }
        while true {
            let (job, stopping) = queue.withLock { q in (q.pop(), q.stopping) }
            if let job { return job }
            if stopping { return nil }
            wakeup.wait()
        }
    }
}

/// Set when the task that asked for a call is cancelled; the call checks it between its steps and stops
/// with `HybridStoreError.cancelled` (the async API throws `CancellationError` for it).
package final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    package init() {}
    package func cancel() { flag.store(true, ordering: .releasing) }
    package var isCancelled: Bool { flag.load(ordering: .acquiring) }
}
