/// The one error type of the state engine. Each adapter maps it once: HTTP status + body, gRPC status + message.
///
/// The texts keep DTM's wording where clients or tests match on it (spec §17.3): FAILURE texts end in
/// " FAILURE", ONGOING texts in " ONGOING".
package enum DTMError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A definite business failure: HTTP 409, gRPC ABORTED.
    case failure(String)
    /// Not finished yet: HTTP 425, gRPC FAILED_PRECONDITION.
    case ongoing(String)
    /// The request itself is malformed: HTTP 400, gRPC INVALID_ARGUMENT. Not a DTM code: DTM answers 500 for
    /// most of these; we answer early and clearly instead (spec §17.39).
    case invalidArgument(String)
    /// Compare-and-set on the stored status did not match, or the row is missing (`storage: NotFound`).
    case storageNotFound(String)
    /// Insert of an existing unique key (`storage: UniqueKeyConflict`).
    case uniqueConflict(String)
    /// Anything else: HTTP 500, gRPC UNKNOWN.
    case other(String)

    package var description: String {
        switch self {
        case .failure(let m): return m.hasSuffix("FAILURE") ? m : "\(m) FAILURE"
        case .ongoing(let m): return m.hasSuffix("ONGOING") ? m : "\(m) ONGOING"
        case .invalidArgument(let m): return m
        case .storageNotFound(let m): return m.isEmpty ? "storage: NotFound" : "storage: NotFound: \(m)"
        case .uniqueConflict(let m): return m.isEmpty ? "storage: UniqueKeyConflict" : "storage: UniqueKeyConflict: \(m)"
        case .other(let m): return m
        }
    }
}
