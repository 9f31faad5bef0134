import AsyncHTTPClient
import DTMCore
import Logging
import NIOCore
import NIOHTTP1

/// Calls HTTP branches as DTM does (spec §7.2, §7.5): the branch URL plus `gid`, `trans_type`, `branch_id` and
/// `op` query parameters; POST with the payload when there is one (always for XA), else GET;
/// `Content-Type: application/json` and the branch headers; the transaction's request timeout.
/// Transactions with protocol `json-rpc` whose URL names a `method` are called with JSON-RPC (spec §7.4).
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
        if call.transProtocol == TransProtocol.jsonRPC && call.url.contains("method") { return await jsonRPC(call) }
        var request = HTTPClientRequest(url: Self.url(for: call))
        let post = !call.payload.isEmpty || call.transType == .xa
        request.method = post ? .POST : .GET
        if post { request.body = .bytes(ByteBuffer(bytes: call.payload)) }
        return await execute(request, call, classify: Self.classify)
    }

    /// A JSON-RPC branch (spec §7.4): the payload object gets gid, trans_type, branch_id and op and is posted as
    /// the params of a request whose method is the URL's `method` query parameter. After the HTTP rules, error
    /// code -32901 means FAILURE and -32902 ONGOING (DTM's own comparison of these codes never matches).
    func jsonRPC(_ call: BranchCall) async -> BranchCallResult {
        guard let params = Self.jsonRPCParams(call) else {
            return .error("json-rpc branch \(call.url): the payload must be a JSON object")
        }
        var w = JSONWriter()
        w.beginObject()
        w.field("jsonrpc", "2.0")
        w.field("method", RequestTarget(call.url)["method"] ?? "")
        w.field("id", GidGenerator.make())
        w.key("params")
        var body = w.bytes
        body += params
        body.append(UInt8(ascii: "}"))
        var request = HTTPClientRequest(url: call.url)
        request.method = .POST
        request.body = .bytes(ByteBuffer(bytes: body))
        return await execute(request, call) { status, answer in
            let http = Self.classify(status: status, body: answer)
            guard http == .success else { return http }
            let text = String(decoding: answer, as: UTF8.self)
            if !text.contains("\"error\"") || text.contains("\"error\":null") { return .success }
            if text.contains("-32901") { return .failure(text) }
            if text.contains("-32902") { return .ongoing(text) }
            return .error("json-rpc error: \(text.prefix(512))")
        }
    }

    /// The payload object with DTM's four keys appended (in a JSON object a later key wins, as DTM overwrites).
    static func jsonRPCParams(_ call: BranchCall) -> [UInt8]? {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0a || b == 0x0d || b == 0x09 }
        var payload = call.payload[...]
        while let f = payload.first, isSpace(f) { payload = payload.dropFirst() }
        while let l = payload.last, isSpace(l) { payload = payload.dropLast() }
        if payload.isEmpty { payload = Array("{}".utf8)[...] }
        guard payload.first == UInt8(ascii: "{"), payload.last == UInt8(ascii: "}") else { return nil }
        var out = Array(payload.dropLast())
        if out.dropFirst().contains(where: { !isSpace($0) }) { out.append(UInt8(ascii: ",")) }
        var w = JSONWriter()
        w.beginObject()
        w.field("gid", call.gid)
        w.field("trans_type", call.transType.rawValue)
        w.field("branch_id", call.branchID)
        w.field("op", call.op)
        w.endObject()
        out += w.bytes.dropFirst()
        return out
    }

    /// Sends with DTM's headers and timeout, reads at most `maxClassifiedBody` of the answer and classifies it.
    private func execute(_ request: HTTPClientRequest, _ call: BranchCall, classify: (Int, [UInt8]) -> BranchCallResult) async -> BranchCallResult {
        var request = request
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in call.headers { request.headers.replaceOrAdd(name: name, value: value) }
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(call.timeout * 1000)))
            var body: [UInt8] = []
            for try await chunk in response.body where body.count < Self.maxClassifiedBody {
                body += chunk.readableBytesView.prefix(Self.maxClassifiedBody - body.count)
            }
            return classify(Int(response.status.code), body)
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
