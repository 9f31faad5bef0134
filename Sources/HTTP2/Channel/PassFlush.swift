import NIOCore

/// Coalesces the flushes a connection handler asks for during one event-loop pass into one, run after the
/// tasks the loop has queued so far: the calls started (or answers given) by those tasks then leave in one
/// socket write instead of one `write(2)` each. On loopback each write also costs the peer a wake-up and a read.
/// Used on its event loop only.
final class PassFlush {
    private var scheduled = false
    private let flush: () -> Void

    /// `flush` writes the owner's pending output; capture the owner weakly (this object outlives a pass).
    init(_ flush: @escaping () -> Void) {
        self.flush = flush
    }

    func request(on eventLoop: any EventLoop) {
        guard !scheduled else { return }
        scheduled = true
        eventLoop.assumeIsolated().execute {
            self.scheduled = false
            self.flush()
        }
    }
}
