/// What the server's owner decides about a request on its HEADERS (`H2ServerSession.Configuration.authorize`), before
/// any of its body is read.
package enum GRPCAdmission: Sendable {
    /// Refused with this status (a missing token, say): answered at once, and its body is never buffered.
    case refused(GRPCStatus)
    /// Allowed without a credential. Its bytes count against the pending-bytes budgets until the request is complete
    /// (a peer that has proved nothing cannot make the server buffer more than they allow), and with a
    /// `maxMessageSize` a larger message is refused RESOURCE_EXHAUSTED as soon as its length prefix arrives.
    case open(maxMessageSize: Int?)
    /// Allowed on a credential: its bytes are read as they arrive, limited only by the session's `maxMessageSize`.
    case authenticated
}
