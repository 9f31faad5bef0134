import Foundation

/// The committed fuzz inputs, Tests/FuzzCorpus: seeds under `<target>/`, and every finding under
/// `regressions/<target>/`. The replay tests run them through the same harnesses as the fuzzers.
package enum FuzzCorpus {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Tests/FuzzCorpus")

    /// (name, bytes) of every file in `dir` (relative to the corpus root), sorted by name; none if it is missing.
    package static func files(_ dir: String) throws -> [(name: String, bytes: [UInt8])] {
        let url = root.appendingPathComponent(dir)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else { return [] }
        return try names.sorted().map { ("\(dir)/\($0)", [UInt8](try Data(contentsOf: url.appendingPathComponent($0)))) }
    }

    /// Seeds then regressions of `target`.
    package static func inputs(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        try files(target) + files("regressions/" + target)
    }

    package static func regression(_ target: String, _ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: root.appendingPathComponent("regressions/\(target)/\(name)")))
    }
}
