import DTMCore

/// A response of the JSON API before it meets the wire.
package struct APIResponse: Sendable, Equatable {
    package var status: Int
    package var contentType: String
    package var body: [UInt8]
    /// Headers besides Content-Type and Content-Length (the console's security and caching headers).
    package var headers: [String: String]

    package init(status: Int, contentType: String = "application/json; charset=utf-8", body: [UInt8], headers: [String: String] = [:]) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    static let success = APIResponse(status: 200, body: Array(#"{"dtm_result":"SUCCESS"}"#.utf8))
    static let notFound = APIResponse(status: 404, contentType: "text/plain", body: Array("404 page not found".utf8))

    static func json(_ build: (inout JSONWriter) -> Void) -> APIResponse {
        var w = JSONWriter()
        build(&w)
        return APIResponse(status: 200, body: w.bytes)
    }

    /// DTM's error responses (spec §3.1): 409 / 425 carry `dtm_result`; 400 and 500 only `message`.
    static func error(_ error: any Error, gid: String?) -> APIResponse {
        let e = (error as? DTMError) ?? .other("\(error)")
        var status = 500
        var result: String?
        var message = e.description
        switch e {
        case .failure: status = 409; result = "FAILURE"
        case .ongoing: status = 425; result = "ONGOING"
        case .invalidArgument: status = 400
        case .storageNotFound, .uniqueConflict, .other:
            if let gid, !gid.isEmpty, !message.contains(gid) { message += " (gid: \(gid))" }
        }
        var w = JSONWriter()
        w.beginObject()
        if let result { w.field("dtm_result", result) }
        w.field("message", message)
        w.endObject()
        return APIResponse(status: status, body: w.bytes)
    }
}
