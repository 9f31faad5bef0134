import NIOCore

/// A Swift concurrency task executor that runs jobs on one NIO event loop.
///
/// A request handled in a task that prefers its connection's event loop reads, stores and calls branches
/// over connections of that loop without a thread hop: an answer arriving on the loop resumes the waiting
/// task in the same loop iteration, where a task on the global executor would need the loop to hand the job
/// to another thread and that thread to hand the next write back.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
