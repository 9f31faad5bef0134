package import NIOCore

/// Admitting a request's headers (validation, the token check, its message limit and deadline) and cutting off
/// requests that do not arrive in time.
extension H2ServerSession {
    /// Answers every unary request still being received that began before `cutoff` with CANCELLED and
    /// stops reading it: a client dripping a request cannot hold a stream (and its buffer) for ever. A streaming
    /// call is cut off the same way when no message of it arrived since `cutoff`: it may stay open as long as it
    /// keeps asking, not for ever in silence. Returns how many were cut off.
    @discardableResult
    package func expireIncompleteRequests(beganBefore cutoff: NIODeadline, timeout: Duration) -> Int {
        var expired = 0
        for stream in streams.values where !stream.remoteClosed && !stream.responded && stream.lastActivity < cutoff {
            if stream.isStreaming {
                finishStream(streamID: stream.id, GRPCStatus(.cancelled, "no message within \(timeout)"))
            } else {
                reject(stream, httpStatus: "200", GRPCStatus(.cancelled, "request not received completely within \(timeout) of its headers"))
            }
            expired += 1
        }
        return expired
    }

    /// Checks a request's HEADERS once they are complete: refuses it, or admits it with its limits and deadline.
    func validateRequestHeaders(_ stream: ServerStream) {
        defer { if let path = stream.path, !stream.responded { stream.isStreaming = configuration.streamingPaths.contains(path) } }
        if let refusal = GRPCRequestValidation.refusal(of: stream) {
            reject(stream, httpStatus: refusal.httpStatus, refusal.status)
            return
        }
        switch configuration.authorize?(stream.path ?? "", stream.metadata) ?? .open(maxMessageSize: nil) {
        case .refused(let status):
            reject(stream, httpStatus: "200", status)
            return
        case .open(let limit):
            if let limit, limit < stream.deframer.maxMessageSize { stream.deframer = GRPCMessageDeframer(maxMessageSize: max(limit, 0)) }
        case .authenticated:
            stream.budgeted = false
        }
        if let timeout = stream.timeout { stream.deadline = .now() + TimeAmount(timeout) }
    }
}
