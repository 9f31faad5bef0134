package import NIOCore

/// The deadlines of many calls on one connection, served by one timer on its event loop.
///
/// A timer per call (schedule, then cancel when the answer came first, which is almost always) was about 5% of
/// a saga's CPU. Here adding a deadline is an append (calls get the same timeout on a rising clock, so they
/// arrive in order; an earlier one is inserted in place), a finished call is never removed (its entry is
/// skipped when it expires), and the single timer wakes at most once per `slack`, handing every expired id to
/// `onExpired`, which ignores ids that already finished. Deadlines may thus be served up to `slack` late.
/// Used only on the event loop it was made for.
///
/// `@inlinable` throughout: the queue is generic and used from other modules, and unspecialized code looked up
/// the metadata of its tuple and array types at run time on every `add` (~3% of dtm-bench's CPU).
package final class DeadlineQueue<ID> {
    @usableFromInline var entries: [(deadline: NIODeadline, id: ID)] = []
    @usableFromInline var head = 0
    @usableFromInline var armed: (deadline: NIODeadline, task: Scheduled<Void>)?
    @usableFromInline let eventLoop: any EventLoop
    @usableFromInline let slack: TimeAmount
    /// Set by the owner after init (it usually captures the owner unowned).
    package var onExpired: (ID) -> Void = { _ in }

    @inlinable
    package init(eventLoop: any EventLoop, slack: TimeAmount = .milliseconds(10)) {
        self.eventLoop = eventLoop
        self.slack = slack
    }

    @inlinable
    package func add(_ id: ID, at deadline: NIODeadline) {
        if let last = entries.last, deadline < last.deadline {
            var low = head
            var high = entries.count
            while low < high {
                let mid = (low + high) / 2
                if entries[mid].deadline <= deadline { low = mid + 1 } else { high = mid }
            }
            entries.insert((deadline, id), at: low)
        } else {
            entries.append((deadline, id))
        }
        arm()
    }

    /// Stops the timer and forgets every deadline (the connection is gone).
    @inlinable
    package func removeAll() {
        armed?.task.cancel()
        armed = nil
        entries.removeAll()
        head = 0
    }

    @inlinable
    func arm() {
        guard head < entries.count else { return }
        let due = max(entries[head].deadline, .now() + slack)
        if let armed, armed.deadline <= due + slack { return }  // an earlier (or close enough) wake-up is set
        armed?.task.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        armed = (due, eventLoop.scheduleTask(deadline: due) { loopBound.value.fire() })
    }

    @inlinable
    func fire() {
        armed = nil
        let now = NIODeadline.now()
        var expired: [ID] = []
        while head < entries.count, entries[head].deadline <= now {
            expired.append(entries[head].id)
            head += 1
        }
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
        for id in expired { onExpired(id) }
        arm()
    }
}
