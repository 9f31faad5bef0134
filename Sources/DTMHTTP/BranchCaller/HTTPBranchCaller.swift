package import AsyncHTTPClient
package import DTMCore
import FoundationEssentials
package import Logging
package import NIOCore
import NIOHTTP1
package import NIOSSL

/// Calls HTTP branches as DTM does (spec §7.2, §7.5): the branch URL plus `gid`, `trans_type`, `branch_id` and
/// `op` query parameters; POST with the payload when there is one (always for XA), else GET;
/// `Content-Type: application/json` and the branch headers; the transaction's request timeout.
/// Transactions with protocol `json-rpc` whose URL names a `method` are called with JSON-RPC (spec §7.4).
/// Plain `http://` URLs go through `plainHTTP` (a lean keep-alive HTTP/1.1 pool on NIO, when given) with the same
/// request AsyncHTTPClient would send; `https://` and any URL or header the lean client does not take verbatim go
/// through AsyncHTTPClient.
package struct HTTPBranchCaller: BranchCaller {
    private let client: HTTPClient
    private let plainHTTP: HTTP1ConnectionPool?
    /// How much of a branch's answer is read to classify it; the rest is discarded.
    static let maxClassifiedBody = 64 * 1024

    package init(client: HTTPClient, plainHTTP: HTTP1ConnectionPool? = nil) {
        self.client = client
        self.plainHTTP = plainHTTP
    }

    /// The lean pool for plain `http://` branch calls (512 connections per host, `HttpIdleTimeout`, 3 s connect).
    package static func makePlainHTTPPool(
        eventLoopGroup: any EventLoopGroup, idleTimeout: TimeAmount = .seconds(60), logger: Logger
    ) -> HTTP1ConnectionPool {
        var config = HTTP1PoolConfiguration()
        config.maxResponseBody = maxClassifiedBody
        config.idleTimeout = idleTimeout
        return HTTP1ConnectionPool(group: eventLoopGroup, configuration: config, logger: logger)
    }

    /// A client configured for branch calls: pooled keep-alive connections, bounded connect time.
    package static func makeClient(eventLoopGroup: any EventLoopGroup, tls: TLSConfiguration? = nil) -> HTTPClient {
        var config = HTTPClient.Configuration()
        if let tls { config.tlsConfiguration = tls }
        config.timeout = .init(connect: .seconds(3))
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        config.decompression = .disabled
        // A redirect would lead the call to a host the allow-list never saw.
        config.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: eventLoopGroup, configuration: config)
    }

    package func call(_ call: BranchCall) async -> BranchCallResult {
        if call.transProtocol == TransProtocol.jsonRPC && call.url.contains("method") { return await jsonRPC(call) }
        return await execute(Self.url(for: call), call.usesPOST ? call.payload : nil, call, classify: Self.classify)
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
        return await execute(call.url, body, call) { status, answer in
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

    /// Sends with DTM's headers and timeout (POST when there is a body, else GET), reads at most
    /// `maxClassifiedBody` of the answer and classifies it.
    private func execute(
        _ url: String, _ body: [UInt8]?, _ call: BranchCall, classify: (Int, [UInt8]) -> BranchCallResult
    ) async -> BranchCallResult {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in call.headers { headers.replaceOrAdd(name: name, value: value) }
        if let trace = call.trace {
            // The call's own span is the parent, whatever the transaction's headers said.
            headers.remove(name: TraceHeaders.tracestateName)
            for (name, value) in trace.pairs { headers.replaceOrAdd(name: name, value: value) }
        }
        let timeout = TimeAmount.milliseconds(Saturating.int64(clamping: call.timeout * 1000))
        let method: HTTPMethod = body == nil ? .GET : .POST
        do {
            if let pool = plainHTTP, let target = HTTP1Target(url),
                let head = target.requestHead(method: method, headers: headers, bodyLength: body?.count ?? 0)
            {
                let request = HTTP1Request(head: head, body: body.map { ByteBuffer(bytes: $0) })
                let response = try await pool.execute(request, to: target.endpoint, deadline: .now() + timeout)
                return classify(response.status, response.body)
            }
            // AsyncHTTPClient reads the URL with Foundation: it must find the host and port the allow-list saw.
            if let problem = Self.readDifferently(url) { return .error("\(call.url.prefix(256)): \(problem)") }
            var request = HTTPClientRequest(url: url)
            request.method = method
            request.headers = headers
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            let response = try await client.execute(request, timeout: timeout)
            var answer: [UInt8] = []
            for try await chunk in response.body where answer.count < Self.maxClassifiedBody {
                answer += chunk.readableBytesView.prefix(Self.maxClassifiedBody - answer.count)
            }
            return classify(Int(response.status.code), answer)
        } catch {
            return .error("\(call.url): \(error)")
        }
    }

    /// Why Foundation's `URL` (which AsyncHTTPClient dials) reads `url` differently from `BranchAddress`, or nil
    /// when both name the same scheme, host and port.
    static func readDifferently(_ url: String) -> String? {
        let ours: BranchAddress
        do { ours = try BranchAddress.parse(url) } catch { return error.description }
        guard let theirs = URL(string: url), let scheme = theirs.scheme?.lowercased(), var host = theirs.host else {
            return "the URL cannot be read"
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let normalized = try? BranchAddress.parseAuthority(host.contains(":") ? "[\(host)]" : host).host
        let port = theirs.port ?? (scheme == "https" ? 443 : 80)
        guard scheme == ours.scheme, normalized == ours.host, port == ours.effectivePort else {
            return "the URL is read as \(scheme)://\(host):\(port) by the HTTP client but as \(ours.scheme)://\(ours.authority) here; refused"
        }
        return nil
    }

    /// The branch URL with DTM's query parameters appended (existing ones kept).
    static func url(for call: BranchCall) -> String {
        let separator = call.url.contains("?") ? "&" : "?"
        return call.url + separator
            + "branch_id=\(percentEncode(call.branchID))&gid=\(percentEncode(call.gid))&op=\(percentEncode(call.op))&trans_type=\(call.transType.rawValue)"
    }

    /// DTM's order (spec §7.5): 425 or a body containing ONGOING is ongoing; 409 or a body containing FAILURE is a
    /// failure; any other status than 200 is an error; else success.
    package static func classify(status: Int, body: [UInt8]) -> BranchCallResult {
        func text() -> String { String(decoding: body, as: UTF8.self) }
        if status == 425 || contains(body, "ONGOING") { return .ongoing(text()) }
        if status == 409 || contains(body, "FAILURE") { return .failure(text()) }
        if status != 200 { return .error("status \(status): \(text().prefix(512))") }
        return .success
    }

    /// Whether `body` holds the ASCII `word`: a byte search (String.contains cost ~3 % of an HTTP saga).
    static func contains(_ body: [UInt8], _ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard body.count >= n else { return false }
        let w = UnsafeBufferPointer(start: word.utf8Start, count: n)
        return body.withUnsafeBufferPointer { b in
            var i = 0
            while i <= b.count - n {
                if b[i] == w[0] && (1..<n).allSatisfy({ b[i + $0] == w[$0] }) { return true }
                i += 1
            }
            return false
        }
    }
}
