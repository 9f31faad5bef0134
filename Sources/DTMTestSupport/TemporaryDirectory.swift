import Foundation
import Synchronization

/// The tests' one temporary directory: made under the system's temporary directory with a recognisable prefix, and
/// removed with everything in it when the value goes away. Directories handed out as bare paths (`processScoped`)
/// are removed when the test process exits, so that a run of the suite leaves none behind.
public final class TemporaryDirectory: Sendable {
    public let url: URL
    public var path: String { url.path }

    public init(prefix: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// A file name inside the directory.
    public func file(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// A directory that lives until the test process exits (for helpers that hand out paths, not values).
    public static func processScoped(prefix: String) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: prefix)
        keptUntilExit.withLock { kept in
            if kept.isEmpty { atexit { TemporaryDirectory.keptUntilExit.withLock { $0.removeAll() } } }
            kept.append(directory)
        }
        return directory
    }

    private static let keptUntilExit = Mutex<[TemporaryDirectory]>([])
}
