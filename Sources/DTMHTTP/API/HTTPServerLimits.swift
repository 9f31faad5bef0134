/// Limits of the HTTP/1.1 listener. Each is a configuration key (README, "Limits").
package struct HTTPServerLimits: Sendable, Equatable {
    /// Largest request body accepted; a larger one gets 400 and the connection is closed.
    package var maxBodyBytes = 4 * 1024 * 1024
    /// A connection with no traffic for this long is closed (seconds).
    package var idleTimeoutSeconds: Int64 = 60
    /// A request must arrive completely (head and body) within this long of its first byte, or the
    /// connection is closed: a client dripping bytes cannot hold a connection past it (seconds).
    package var readTimeoutSeconds: Int64 = 30
    /// On graceful shutdown, how long in-flight requests may take before connections are closed (seconds).
    package var shutdownGraceSeconds: Double = 10
    /// Most connections open at once; past it a new one gets 503 and is closed (`MaxConnections`).
    package var maxConnections = 4096

    package init() {}
}
