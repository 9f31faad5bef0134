import Synchronization

/// The request bytes a whole server may hold for messages it has admitted but not yet handed on (`GrpcMaxPendingBytes`),
/// shared by every connection of a `GRPCServer`. Connections reserve a message's announced length here and in their
/// own `ReceiveBudget` before they reopen its flow-control window, so what a peer may make the process buffer is bounded
/// by configuration, not by how many streams it opens.
///
/// Sendable: the count is an atomic, and a reservation is all or nothing (compare-and-exchange), so connections on
/// different event loops never together pass the limit.
package final class PendingBytesBudget: Sendable {
    package let limit: Int
    private let used = Atomic<Int>(0)

    package init(limit: Int) {
        self.limit = max(limit, 0)
    }

    /// Bytes reserved now, by every connection together.
    package var reservedBytes: Int { used.load(ordering: .relaxed) }

    /// Reserves `bytes` if they fit under the limit; false (and nothing reserved) otherwise.
    func reserve(_ bytes: Int) -> Bool {
        guard bytes >= 0 else { return false }
        var current = used.load(ordering: .relaxed)
        while true {
            // current ≤ limit always holds, so neither side of the comparison nor the sum can overflow.
            guard bytes <= limit - current else { return false }
            let (exchanged, original) = used.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Gives back `bytes` reserved earlier (callers never give back more than they reserved).
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        used.subtract(bytes, ordering: .relaxed)
    }
}

/// One connection's share of the pending-bytes budget (`GrpcMaxPendingBytesPerConnection`). A stream is admitted once
/// the whole announced length of its message is reserved here and in the process's `PendingBytesBudget`; only then do
/// its windows reopen, so the peer stalls, rather than the server buffering, when neither budget has room. A value:
/// the session that owns it uses it on its event loop only.
///
/// Bytes of streams not admitted yet (at most a stream's small initial window each) may give back the connection's
/// window, never the stream's, up to `unadmittedAllowance`: streams waiting for room then do not fill the connection's
/// window and starve the admitted ones. Beyond the allowance they stay in the connection's window, the last bound.
struct ReceiveBudget {
    let connectionLimit: Int
    let process: PendingBytesBudget
    let unadmittedAllowance: Int
    /// Bytes this connection has reserved (and holds reserved in the process budget).
    private(set) var reserved = 0
    /// Bytes held unadmitted whose connection window was given back.
    private(set) var unadmitted = 0

    init(connectionLimit: Int, process: PendingBytesBudget, unadmittedAllowance: Int) {
        self.connectionLimit = max(connectionLimit, 0)
        self.process = process
        self.unadmittedAllowance = max(unadmittedAllowance, 0)
    }

    /// Reserves `bytes` on the connection and the process, all or nothing.
    mutating func reserve(_ bytes: Int) -> Bool {
        guard bytes >= 0, bytes <= connectionLimit - reserved, process.reserve(bytes) else { return false }
        reserved += bytes
        return true
    }

    /// Gives back `bytes` of this connection's reservations (at most what it holds).
    mutating func release(_ bytes: Int) {
        let bytes = min(max(bytes, 0), reserved)
        reserved -= bytes
        process.release(bytes)
    }

    /// Takes up to `wanted` bytes of the unadmitted allowance; returns how many it got.
    mutating func takeUnadmitted(upTo wanted: Int) -> Int {
        let granted = min(max(wanted, 0), unadmittedAllowance - unadmitted)
        unadmitted += granted
        return granted
    }

    /// Gives back `bytes` taken with `takeUnadmitted` (at most what is taken).
    mutating func giveBackUnadmitted(_ bytes: Int) {
        unadmitted -= min(max(bytes, 0), unadmitted)
    }

    /// The connection is gone: everything it reserved goes back to the process.
    mutating func releaseAll() {
        release(reserved)
        unadmitted = 0
    }
}
