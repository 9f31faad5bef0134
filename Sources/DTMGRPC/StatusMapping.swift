import DTMCore

/// How an error of the state engine is answered over gRPC (spec §3.2), mapped in this one place.
public enum StatusMapping {
    /// gRPC status codes used by the service.
    public enum Code: Int, Sendable {
        case ok = 0, unknown = 2, invalidArgument = 3, failedPrecondition = 9, aborted = 10, unimplemented = 12, `internal` = 13
    }

    /// FAILURE → ABORTED, ONGOING → FAILED_PRECONDITION (DTM's mapping); bad input → INVALID_ARGUMENT (DTM panics
    /// into INTERNAL there); a lost compare-and-set → INTERNAL (a panic in DTM); anything else → UNKNOWN.
    public static func status(for error: any Error, gid: String?) -> (code: Code, message: String) {
        let e = (error as? DTMError) ?? .other("\(error)")
        var message = e.description
        switch e {
        case .failure: return (.aborted, message)
        case .ongoing: return (.failedPrecondition, message)
        case .invalidArgument: return (.invalidArgument, message)
        case .storageNotFound:
            if let gid, !gid.isEmpty { message += " (gid: \(gid))" }
            return (.internal, message)
        case .uniqueConflict, .other:
            if let gid, !gid.isEmpty, !message.contains(gid) { message += " (gid: \(gid))" }
            return (.unknown, message)
        }
    }
}
