/// The optional shared secret clients present: HTTP `Authorization: Bearer <token>`, gRPC metadata
/// `authorization: Bearer <token>`. Compared in constant time.
public struct BearerToken: Sendable {
    private let expected: [UInt8]

    public init?(_ token: String) {
        guard !token.isEmpty else { return nil }
        expected = Array(token.utf8)
    }

    /// Whether an `authorization` value carries the token (`Bearer <token>`, scheme case-insensitive).
    public func accepts(_ authorization: String?) -> Bool {
        guard let authorization else { return false }
        let bytes = Array(authorization.utf8)
        guard bytes.count > 7, String(decoding: bytes[0..<7], as: UTF8.self).lowercased() == "bearer " else { return false }
        let given = bytes[7...]
        var diff = UInt8(given.count == expected.count ? 0 : 1)
        for (i, b) in expected.enumerated() { diff |= b ^ (i < given.count ? given[given.startIndex + i] : 0) }
        return diff == 0
    }

    /// Paths that stay open without a token: health and monitoring.
    public static func isPublic(path: Substring) -> Bool {
        path == "/api/ping" || path == "/api/metrics"
    }
}
