/// A way of submitting two-branch sagas to the coordinator. Each load task makes its own worker and uses it
/// alone (an HTTP/1.1 worker owns one keep-alive connection), so workers need no locking.
protocol Scenario: Sendable {
    /// Short name for the report, e.g. `grpc` or `http wait_result`.
    var name: String { get }
    func makeWorker() -> any SubmitWorker
    func shutdown() async
}

protocol SubmitWorker: AnyObject {
    /// Submits saga number `seq` (gid `<prefix><seq>`); true when the coordinator accepted it.
    func submit(seq: Int) async -> Bool
    func finish() async
}
