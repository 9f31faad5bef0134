import Glibc
import Synchronization

/// Ports for the servers the tests start (the coordinator, etcd, PostgreSQL).
package enum LoopbackPort {
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    /// Ports handed out in this test process, never handed out twice.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A free TCP port on 127.0.0.1, chosen below Linux's ephemeral range (32768+) so that no port-0 bind of a
    /// concurrently running test can be handed the same port after we release it.
    package static func free() throws -> Int {
        for _ in 0..<100 {
            let port = Int.random(in: 20_000..<32_000)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if canBind(port) { return port }
        }
        throw Failure(description: "no free port found")
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` (a server's own readiness check may use another
    /// way in, such as a Unix socket, that is ready first).
    package static func isAccepting(_ port: Int) -> Bool { withLoopbackSocket(port) { connect($0, $1, $2) } }

    private static func canBind(_ port: Int) -> Bool { withLoopbackSocket(port) { bind($0, $1, $2) } }

    /// Runs `call` (connect or bind) on a new TCP socket with 127.0.0.1:`port`; true when it returned 0.
    private static func withLoopbackSocket(_ port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(clamping: port).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, length) } } == 0
    }
}
