import DTMCore
package import HTTP2

/// How an error of the state engine is answered over gRPC (spec §3.2), mapped in this one place.
package enum StatusMapping {
    /// FAILURE → ABORTED, ONGOING → FAILED_PRECONDITION (DTM's mapping); bad input → INVALID_ARGUMENT (DTM panics
    /// into INTERNAL there); a lost compare-and-set → INTERNAL (a panic in DTM); anything else → UNKNOWN.
    package static func status(for error: any Error, gid: String?) -> GRPCStatus {
        let (code, message) = codeAndMessage(for: error, gid: gid)
        return GRPCStatus(code, message)
    }

    private static func codeAndMessage(for error: any Error, gid: String?) -> (GRPCStatusCode, String) {
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
