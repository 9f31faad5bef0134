import DTMCore
import DTMTestSupport
@testable import DTMHTTP
import Logging
import Testing

/// The API's spans (with the recording tracer): named by the route table, the caller's context as parent, the context
/// handed to the coordinator, and nothing a client sends kept without bound.
@Suite("API spans")
struct APITracingTests {
    let tracer = RecordingTracer()
    let router: APIRouter

    init() {
        let coordinator = Coordinator(
            context: ProcessingContext(
                store: InMemoryStore(), caller: BranchCallRouter(http: ScriptedCaller(), grpc: ScriptedCaller()), clock: ManualClock(),
                coding: JSONTextCoding(), config: EngineConfig(), logger: Logger(label: "test"), tracer: tracer))
        router = APIRouter(coordinator: coordinator, version: "test", logger: Logger(label: "test"))
    }

    static let client = TraceHeaders(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")

    @Test("a submit's span is named by its route, is the child of the caller's span and the parent of the round")
    func submit() async throws {
        let body = #"{"gid":"api-1","trans_type":"saga","steps":[{"action":"http://127.0.0.1:1/a"}],"payloads":["{}"],"wait_result":true}"#
        let response = await router.handleAdmitted(method: "POST", uri: "/api/dtmsvr/submit", authorization: nil, body: Array(body.utf8), trace: Self.client)
        #expect(response.status == 200)
        let api = try #require(tracer.spans.first)
        #expect(api.name == "POST /api/dtmsvr/submit" && api.kind == .server && api.parentID == "b7ad6b7169203331")
        #expect(api.attributes["dtm.gid"] == .string("api-1") && api.attributes["http.response.status_code"] == .int(200))
        let round = try #require(tracer.spans(named: "dtm.round").first)
        #expect(round.parentID == api.spanID)
    }

    @Test("an unknown method and path give the span no name from the request; a 1 MiB gid is cut to 128 characters on it")
    func bounded() async throws {
        _ = await router.handleAdmitted(method: "BREW", uri: "/api/dtmsvr/" + String(repeating: "x", count: 5000), authorization: nil, body: [])
        let other = try #require(tracer.spans.last)
        #expect(other.name == "_OTHER")
        #expect(other.attributes["url.path"].map { if case .string(let s) = $0 { s.count <= 256 } else { false } } == true)
        let gid = String(repeating: "g", count: 1 << 20)
        let body = #"{"gid":"\#(gid)","trans_type":"saga","steps":[{"action":"http://127.0.0.1:1/a"}],"payloads":["{}"]}"#
        let response = await router.handleAdmitted(method: "POST", uri: "/api/dtmsvr/submit", authorization: nil, body: Array(body.utf8))
        #expect(response.status == 400)
        let span = try #require(tracer.spans.last)
        #expect(span.attributes["dtm.gid"] == .string(String(repeating: "g", count: 128)))
        #expect(!span.name.contains("ggg"))
    }
}
