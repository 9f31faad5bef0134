package import NIOCore
import Synchronization

/// The accepted connections of one listener, until each closes (the HTTP/1.1 and gRPC listeners share it), so that
/// shutdown can reach every open connection and await their closing instead of polling for it.
package final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    package init() {}

    /// Tracks `channel` until it closes.
    package func add(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        channels.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = channels.withLock { $0.removeValue(forKey: key) }
        }
    }

    /// The connections open now.
    package var open: [any Channel] { channels.withLock { Array($0.values) } }

    package func closeAll() {
        for channel in open { channel.close(promise: nil) }
    }

    /// Returns once every connection open now has closed.
    package func allClosed() async {
        for channel in open { try? await channel.closeFuture.get() }
    }
}
