/// A gRPC status code (the `grpc-status` trailer). A struct rather than an enum so that codes
/// a peer sends which we do not know still round-trip.
package struct GRPCStatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package var rawValue: Int
    package init(rawValue: Int) { self.rawValue = rawValue }

    package static let ok = GRPCStatusCode(rawValue: 0)
    package static let cancelled = GRPCStatusCode(rawValue: 1)
    package static let unknown = GRPCStatusCode(rawValue: 2)
    package static let invalidArgument = GRPCStatusCode(rawValue: 3)
    package static let deadlineExceeded = GRPCStatusCode(rawValue: 4)
    package static let notFound = GRPCStatusCode(rawValue: 5)
    package static let alreadyExists = GRPCStatusCode(rawValue: 6)
    package static let permissionDenied = GRPCStatusCode(rawValue: 7)
    package static let resourceExhausted = GRPCStatusCode(rawValue: 8)
    package static let failedPrecondition = GRPCStatusCode(rawValue: 9)
    package static let aborted = GRPCStatusCode(rawValue: 10)
    package static let outOfRange = GRPCStatusCode(rawValue: 11)
    package static let unimplemented = GRPCStatusCode(rawValue: 12)
    package static let `internal` = GRPCStatusCode(rawValue: 13)
    package static let unavailable = GRPCStatusCode(rawValue: 14)
    package static let dataLoss = GRPCStatusCode(rawValue: 15)
    package static let unauthenticated = GRPCStatusCode(rawValue: 16)

    package var description: String {
        let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
            "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        ]
        return names.indices.contains(rawValue) ? names[rawValue] : "CODE(\(rawValue))"
    }

    /// The code a client derives from a non-200 HTTP status (gRPC's http-grpc-status-mapping.md).
    static func fromHTTPStatus(_ status: Int) -> GRPCStatusCode {
        switch status {
        case 400: .internal
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .unimplemented
        case 429, 502, 503, 504: .unavailable
        default: .unknown
        }
    }
}

/// A status as sent in trailers: code plus human-readable message (unencoded here).
package struct GRPCStatus: Sendable, Hashable, Error, CustomStringConvertible {
    package var code: GRPCStatusCode
    package var message: String

    package init(_ code: GRPCStatusCode, _ message: String = "") {
        self.code = code
        self.message = message
    }

    package static let ok = GRPCStatus(.ok)

    /// What a server answers for a method it does not serve; grpc-go's wording.
    package static func unimplementedMethod(_ path: String) -> GRPCStatus {
        GRPCStatus(.unimplemented, "unknown method \(path)")
    }

    package var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }
}
