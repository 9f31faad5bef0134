package import NIOCore
import Synchronization

/// A Swift concurrency task executor that runs jobs on one NIO event loop.
///
/// A request handled in a task that prefers its connection's event loop reads, stores and calls branches
/// over connections of that loop without a thread hop: an answer arriving on the loop resumes the waiting
/// task in the same loop iteration, where a task on the global executor would need the loop to hand the job
/// to another thread and that thread to hand the next write back.
///
/// Jobs queue here and reach the loop in batches: the first job of a batch schedules one drain with
/// `execute`, later ones only join the queue. The store's writer resumes every task of a group commit at
/// once, so most of those jobs cost an append under this lock instead of a closure, NIO's cross-thread lock
/// and a wake-up check each.
package final class EventLoopTaskExecutor: TaskExecutor {
    package let eventLoop: any EventLoop

    private struct Queue {
        var jobs: [UnownedJob] = []
        /// The previous batch's emptied buffer, capacity kept, to become `jobs` again at the next drain.
        var spare: [UnownedJob] = []
        var drainScheduled = false
    }

    private let queue = Mutex(Queue())

    package init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let scheduleDrain = queue.withLock { q -> Bool in
            q.jobs.append(job)
            guard !q.drainScheduled else { return false }
            q.drainScheduled = true
            return true
        }
        if scheduleDrain { eventLoop.execute { self.drain() } }
    }

    /// Runs the jobs queued so far, in order. Jobs they enqueue go to the next batch, scheduled behind
    /// whatever else the loop has queued meanwhile, so a busy executor cannot starve the loop's I/O.
    private func drain() {
        var batch = queue.withLock { q -> [UnownedJob] in
            q.drainScheduled = false
            var taken = q.spare
            swap(&taken, &q.jobs)
            q.spare = []
            return taken
        }
        let executor = asUnownedTaskExecutor()
        for job in batch { job.runSynchronously(on: executor) }
        batch.removeAll(keepingCapacity: true)
        queue.withLock { $0.spare = batch }
    }
}
