package import AsyncHTTPClient
package import DTMCore
package import Logging
import NIOCore

/// Posts DTM's alert (spec §9.7) to `AlertWebHook` for every failing attempt once a branch has backed off
/// `AlertRetryLimit` times. The answer is ignored; a transport error is logged.
package struct AlertWebHook: AlertSink {
    let url: String
    let client: HTTPClient
    let logger: Logger

    package init(url: String, client: HTTPClient, logger: Logger) {
        self.url = url
        self.client = client
        self.logger = logger
    }

    package func alert(gid: String, status: GlobalStatus, branchURL: String, error: String, retryCount: Int64) async {
        var w = JSONWriter()
        w.beginObject()
        w.field("gid", gid)
        w.field("status", status.rawValue)
        w.field("branch", branchURL)
        w.field("error", error)
        w.field("retry_count", retryCount)
        w.endObject()
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: w.bytes))
        do {
            _ = try await client.execute(request, timeout: .seconds(3))
        } catch {
            logger.warning("alert webhook failed", metadata: ["gid": .string(gid), "url": .string(url), "error": .string("\(error)")])
        }
    }
}
