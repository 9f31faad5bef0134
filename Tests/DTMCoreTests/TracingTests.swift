@testable import DTMCore
import DTMTestSupport
import Logging
import Testing

/// The core's side of tracing, with the recording tracer: which spans a round makes, who their parents are, what the
/// branch calls carry and what is stored for later rounds. (The OTLP export is tested end to end in
/// Tests/InteropGRPC/test_tracing.py.)
@Suite("tracing: spans of rounds and branch calls")
struct TracingTests {
    let tracer = RecordingTracer()
    let h: Harness
    static let client = TraceHeaders(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "k=v")

    init() {
        h = Harness(tracer: tracer)
    }

    @Test("a submit's round is the child of the API call's span; each branch call has its own span, whose context it carries")
    func submitRound() async throws {
        var request = h.saga("t1", steps: 2)
        request.options.branchHeaders = ["traceparent": "00-11111111111111111111111111111111-2222222222222222-01", "X-Kept": "1"]
        request.trace = Self.client
        try await h.coordinator.submit(request)

        let round = try #require(tracer.spans(named: "dtm.round").first)
        #expect(round.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(round.parentID == "b7ad6b7169203331", "the round's parent is the span the submit carried")
        #expect(round.attributes["dtm.round_reason"] == .string("submit"))
        #expect(round.attributes["dtm.status_before"] == .string("submitted"))
        #expect(round.attributes["dtm.status_after"] == .string("succeed"))
        #expect(round.attributes["dtm.round_result"] == .string("ok"))
        #expect(round.events.contains("dtm.status_changed"))
        #expect(round.ended == "ok")

        let branchSpans = tracer.spans.filter { $0.kind == .client }
        #expect(branchSpans.map(\.name) == ["POST", "POST"])
        #expect(branchSpans.allSatisfy { $0.parentID == round.spanID && $0.ended == "ok" && $0.attributes["dtm.result"] == .string("SUCCESS") })
        #expect(branchSpans.map { $0.attributes["url.full"] } == [.string("a1"), .string("a2")])

        let calls = h.caller.calls
        #expect(calls.count == 2)
        for (call, span) in zip(calls, branchSpans) {
            #expect(call.trace?.traceparent == "00-\(span.traceID)-\(span.spanID)-01", "each call carries its own span as parent")
            #expect(call.headers["X-Kept"] == "1")
        }
        let stored = try #require(try await h.store.transaction(gid: "t1"))
        #expect(stored.extData.contains("0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"), "the context is stored for later rounds")
    }

    @Test("a cron round continues the stored trace, as `retry` after a back-off; the failed round's span says why")
    func cronRound() async throws {
        var request = h.saga("t2", steps: 1, waitResult: false)
        request.trace = Self.client
        h.caller.script("a1", .error("connection refused"))
        try await h.coordinator.submit(request)
        try await waitUntil { tracer.spans(named: "dtm.round").first?.ended != nil }
        let first = try #require(tracer.spans(named: "dtm.round").first)
        #expect(first.attributes["dtm.status_after"] == .string("submitted"))
        #expect(first.attributes["dtm.round_result"] == .string("error"), "a round whose call failed says so, though the saga backed it off")
        #expect(first.ended == "error: connection refused")
        #expect(first.events.contains("dtm.back_off"))
        let failedCall = try #require(tracer.spans.first { $0.kind == .client })
        #expect(failedCall.ended == "error: connection refused")
        #expect(failedCall.attributes["dtm.result"] == .string("ERROR"))

        h.clock.advance(3600)
        #expect(await h.coordinator.cronOnce() == ["t2"])
        let rounds = tracer.spans(named: "dtm.round")
        #expect(rounds.count == 2)
        #expect(rounds[1].traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(rounds[1].parentID == "b7ad6b7169203331", "the cron round's parent is the stored context")
        #expect(rounds[1].attributes["dtm.round_reason"] == .string("retry"))
        #expect(rounds[1].attributes["dtm.status_after"] == .string("succeed"))
        // The stored headers go with the call too (DTM's ext_data headers), under the call's own span.
        let lastCall = try #require(h.caller.calls.last)
        #expect(lastCall.trace?.traceparent.contains(rounds[1].traceID) == true)
        #expect(lastCall.headers["traceparent"] == Self.client.traceparent)
    }

    @Test("without a tracer calls carry no span of ours; a context stored by a coordinator that traced is passed on as DTM passes ext_data headers")
    func tracingOff() async throws {
        let plain = Harness()
        var request = plain.saga("t3", steps: 1)
        request.trace = Self.client
        try await plain.coordinator.submit(request)
        let call = try #require(plain.caller.calls.first)
        #expect(call.trace == nil)
        #expect(call.headers["traceparent"] == Self.client.traceparent && call.headers["tracestate"] == "k=v")
        try await plain.coordinator.submit(plain.saga("t4", steps: 1))
        #expect(try await plain.store.transaction(gid: "t4")?.extData == "", "nothing is stored for a call that brought no trace")
    }

    @Test("a received context is bounded: an over-long traceparent is not taken, an over-long tracestate is dropped")
    func receivedBounds() {
        #expect(TraceHeaders.received(traceparent: String(repeating: "a", count: 129), tracestate: nil) == nil)
        #expect(TraceHeaders.received(traceparent: "", tracestate: "k=v") == nil)
        let kept = TraceHeaders.received(traceparent: Self.client.traceparent, tracestate: String(repeating: "k=v,", count: 200))
        #expect(kept == TraceHeaders(traceparent: Self.client.traceparent, tracestate: ""))
        #expect(
            TraceHeaders.received(traceparent: Self.client.traceparent, tracestate: "k=\"v\\")
                == TraceHeaders(traceparent: Self.client.traceparent, tracestate: "k=\"v\\"))
    }

    @Test("a tracestate with quotes and backslashes is stored as JSON and read back the same")
    func storedEscapes() async throws {
        var request = h.saga("t5", steps: 1)
        request.trace = TraceHeaders(traceparent: Self.client.traceparent, tracestate: "k=\"v\\")
        try await h.coordinator.submit(request)
        let stored = try #require(try await h.store.transaction(gid: "t5"))
        #expect(try TransactionExtData.headers(of: stored.extData, coding: JSONTestCoding())["tracestate"] == "k=\"v\\")
    }

    private func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        #expect(condition())
    }
}
