/// The optional shared secret clients present: HTTP `Authorization: Bearer <token>`, gRPC metadata
/// `authorization: Bearer <token>`. Compared in constant time.
package struct BearerToken: Sendable {
    private let expected: [UInt8]

    package init?(_ token: String) {
        guard !token.isEmpty else { return nil }
        expected = Array(token.utf8)
    }

    /// Whether an `authorization` value carries the token (`Bearer <token>`, scheme case-insensitive).
    package func accepts(_ authorization: String?) -> Bool {
        guard let authorization else { return false }
        let bytes = Array(authorization.utf8)
        guard bytes.count > 7, String(decoding: bytes[0..<7], as: UTF8.self).lowercased() == "bearer " else { return false }
        let given = bytes[7...]
        var diff = UInt8(given.count == expected.count ? 0 : 1)
        for (i, b) in expected.enumerated() { diff |= b ^ (i < given.count ? given[given.startIndex + i] : 0) }
        return diff == 0
    }
}

/// Who may call what (README, Security): health and metrics are open; client APIs (submit, prepare, abort,
/// registerBranch, query of one gid, …) need `AuthToken` when one is set; admin APIs (forceStop, resetCronTime,
/// resetNextCronTime, topics, scanKV/queryKV, all) need `AdminToken`, or `AuthToken` when no admin token is set.
/// The admin token also works for client APIs. `branch_headers` values are shown only to its holder.
package struct AccessPolicy: Sendable {
    package enum Level: Sendable { case open, client, admin }

    private let client: BearerToken?
    private let admin: BearerToken?

    package init(authToken: String, adminToken: String) {
        client = BearerToken(authToken)
        admin = BearerToken(adminToken) ?? BearerToken(authToken)
    }

    /// No token at all: every API is open.
    package static let open = AccessPolicy(authToken: "", adminToken: "")

    package func allows(_ level: Level, authorization: String?) -> Bool {
        switch level {
        case .open: return true
        case .client:
            guard let client else { return true }
            return client.accepts(authorization) || (admin?.accepts(authorization) ?? false)
        case .admin:
            guard let admin else { return true }
            return admin.accepts(authorization)
        }
    }

    /// Whether the caller may see secrets such as `branch_headers` values: only with the admin token.
    package func revealsSecrets(authorization: String?) -> Bool { admin?.accepts(authorization) ?? false }

    /// Whether the admin APIs are guarded.
    package var hasAdminToken: Bool { admin != nil }

    /// The start-up warning naming the APIs anyone who reaches the ports may call, or nil when every level is
    /// guarded. Without `AdminToken`, `AuthToken` guards the admin APIs too: every client may force-stop.
    package static func openAPIsWarning(authToken: String, adminToken: String) -> String? {
        let clientAPIs = "the client APIs (submit, prepare, abort, registerBranch, query, JSON-RPC, gRPC Dtm)"
        let adminAPIs = "the admin APIs (forceStop, all, resetCronTime, topics, scanKV, the console's data)"
        switch (authToken.isEmpty, adminToken.isEmpty) {
        case (true, true):
            return "neither AuthToken nor AdminToken is set: \(clientAPIs) and \(adminAPIs) are open to anyone who can reach the ports"
        case (true, false):
            return "AuthToken is not set: \(clientAPIs) are open to anyone who can reach the ports (\(adminAPIs) need AdminToken)"
        case (false, true):
            return "AdminToken is not set: every holder of AuthToken may also call \(adminAPIs)"
        case (false, false):
            return nil
        }
    }
}
