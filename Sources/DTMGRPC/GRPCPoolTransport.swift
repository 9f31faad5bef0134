import DTMCore
package import HTTP2

/// The nghttp2 connection pool as the branch caller's transport. The pool never throws: a transport failure
/// arrives as a status (UNAVAILABLE, DEADLINE_EXCEEDED, …), which the caller retries like any non-DTM status.
package struct GRPCPoolTransport: GRPCUnaryTransport {
    let pool: GRPCConnectionPool

    package init(pool: GRPCConnectionPool) { self.pool = pool }

    package func unary(
        authority: String, path: String, metadata: [(String, String)], message: [UInt8], timeout: Double, tls: Bool
    ) async -> GRPCCallResult {
        await pool.unary(
            authority: authority, path: path, metadata: metadata, message: message,
            timeout: .milliseconds(Saturating.int64(clamping: timeout * 1000)), tls: tls)
    }
}
