import Foundation
import Logging

/// The `main` of every fuzz target built without libFuzzer: runs `harness` on each file named on the
/// command line (a seed, a crash artifact), so a finding can be replayed under a debugger or in CI.
package func replayFiles(_ harness: ([UInt8]) -> Void) throws {
    let logger = Logger(label: "swift-dtm.fuzz-replay")
    for path in CommandLine.arguments.dropFirst() {
        let bytes = [UInt8](try Data(contentsOf: URL(filePath: path)))
        harness(bytes)
        logger.info("replayed", metadata: ["file": .string(path), "bytes": .stringConvertible(bytes.count)])
    }
}

/// Stops the process, which libFuzzer reports as a finding, when a harness reports a broken invariant.
package func requireNoProblems(_ problems: [String]) {
    precondition(problems.isEmpty, problems.joined(separator: "; "))
}
