import EventLoopSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import HTTP2

@Suite("deadline queue: one timer for every call of a connection")
struct DeadlineQueueTests {
    /// Adds `(id, ms from now)` on a real event loop and collects expired ids, in order, until `count` expired.
    func expire(_ adds: [(Int, Int64)], count: Int) async throws -> [Int] {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let expired = Mutex<[Int]>([])
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            loop.execute {
                let queue = DeadlineQueue<Int>(eventLoop: loop, slack: .milliseconds(5))
                queue.onExpired = { id in
                    let n = expired.withLock {
                        $0.append(id); return $0.count
                    }
                    if n == count { done.resume() }
                }
                let start = NIODeadline.now()
                for (id, ms) in adds { queue.add(id, at: start + .milliseconds(ms)) }
                // The armed timer holds the queue until the last deadline has passed.
            }
        }
        return expired.withLock { $0 }
    }

    @Test("deadlines added out of order expire in deadline order")
    func order() async throws {
        let ids = try await expire([(1, 60), (2, 20), (3, 100), (4, 40), (5, 20)], count: 5)
        #expect(ids == [2, 5, 4, 1, 3])
    }

    @Test("a deadline already past expires on the next wake-up; many in order keep their order")
    func many() async throws {
        let adds = [(0, Int64(-5))] + (1...2000).map { ($0, Int64(10 + $0 / 100)) }
        let ids = try await expire(adds, count: 2001)
        #expect(ids == Array(0...2000))
    }
}
