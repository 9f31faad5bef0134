import AsyncHTTPClient
import DTMCore
import Logging
import NIOCore
import NIOHTTP1

/// Calls HTTP branches as DTM does (spec §7.2, §7.5): the branch URL plus `gid`, `trans_type`, `branch_id` and
/// `op` query parameters; POST with the payload when there is one (always for XA), else GET;
/// `Content-Type: application/json` and the branch headers; the transaction's request timeout.
public struct HTTPBranchCaller: BranchCaller {
    private let client: HTTPClient
    /// How much of a branch's answer is read to classify it; the rest is discarded.
    static let maxClassifiedBody = 64 * 1024

    public init(client: HTTPClient) { self.client = client }

    /// A client configured for branch calls: pooled keep-alive connections, bounded connect time.
    public static func makeClient(eventLoopGroup: any EventLoopGroup) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(3))
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        config.decompression = .disabled
        return HTTPClient(eventLoopGroup: eventLoopGroup, configuration: config)
    }

    public func call(_ call: BranchCall) async -> BranchCallResult {
        var request = HTTPClientRequest(url: Self.url(for: call))
        let post = !call.payload.isEmpty || call.transType == .xa
        request.method = post ? .POST : .GET
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in call.headers { request.headers.replaceOrAdd(name: name, value: value) }
        if post { request.body = .bytes(ByteBuffer(bytes: call.payload)) }
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(call.timeout * 1000)))
            var body: [UInt8] = []
            for try await chunk in response.body where body.count < Self.maxClassifiedBody {
                body += chunk.readableBytesView.prefix(Self.maxClassifiedBody - body.count)
            }
            return Self.classify(status: Int(response.status.code), body: body)
        } catch {
            return .error("\(call.url): \(error)")
        }
    }

    /// The branch URL with DTM's query parameters appended (existing ones kept).
    static func url(for call: BranchCall) -> String {
        let separator = call.url.contains("?") ? "&" : "?"
        return call.url + separator
            + "branch_id=\(percentEncode(call.branchID))&gid=\(percentEncode(call.gid))&op=\(percentEncode(call.op))&trans_type=\(call.transType.rawValue)"
    }

    /// DTM's order (spec §7.5): 425 or a body containing ONGOING is ongoing; 409 or a body containing FAILURE is a
    /// failure; any other status than 200 is an error; else success.
    public static func classify(status: Int, body: [UInt8]) -> BranchCallResult {
        let text = String(decoding: body, as: UTF8.self)
        if status == 425 || text.contains("ONGOING") { return .ongoing(text) }
        if status == 409 || text.contains("FAILURE") { return .failure(text) }
        if status != 200 { return .error("status \(status): \(text.prefix(512))") }
        return .success
    }
}
