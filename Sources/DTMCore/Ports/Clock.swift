/// Wall-clock time and sleeping, injected so that tests can drive time by hand.
package protocol CoordinatorClock: Sendable {
    func now() -> Timestamp
    /// Sleeps for `seconds`; throws `CancellationError` if the task is cancelled.
    func sleep(seconds: Double) async throws
}

/// Decodes and encodes the JSON texts DTM keeps in string columns (`custom_data`, topic subscriber lists).
/// The core knows their shape, not JSON.
package protocol TextCoding: Sendable {
    func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T
    func encode<T: Encodable>(_ value: T) throws -> String
}
