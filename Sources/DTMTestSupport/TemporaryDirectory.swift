package import Foundation
import Synchronization

/// The tests' one temporary directory: made under the system's temporary directory with a recognisable prefix, and
/// removed with everything in it when the value goes away. Directories handed out as bare paths (`processScoped`)
/// are removed when the test process exits, so that a run of the suite leaves none behind.
package final class TemporaryDirectory: Sendable {
    package let url: URL
    package var path: String { url.path }

    package init(prefix: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// A file name inside the directory.
    package func file(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// A directory that lives until the test process exits (for helpers that hand out paths, not values).
    package static func processScoped(prefix: String) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: prefix)
        keptUntilExit.withLock { kept in
            if kept.isEmpty { atexit { TemporaryDirectory.keptUntilExit.withLock { $0.removeAll() } } }
            kept.append(directory)
        }
        return directory
    }

    private static let keptUntilExit = Mutex<[TemporaryDirectory]>([])
}
