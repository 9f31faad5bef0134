import FuzzSupport
import Testing

/// The committed FuzzJSONRequest inputs (Tests/FuzzCorpus: seeds, and `regressions/`) through the fuzzer's own
/// harness, FuzzSupport.JSONRequestHarness.
@Suite("fuzz corpus replay (JSON requests)")
struct JSONFuzzReplayTests {
    @Test("FuzzJSONRequest seeds are answered without a server error")
    func seeds() async throws {
        let seeds = try FuzzCorpus.files("FuzzJSONRequest")
        #expect(seeds.count >= 5)
        for (name, bytes) in seeds {
            let (statuses, problems) = await JSONRequestHarness.run(bytes)
            #expect(problems.isEmpty, "\(name): \(problems)")
            #expect(statuses.allSatisfy { $0 < 500 }, "\(name): \(statuses)")
        }
    }

    /// Found by FuzzJSONRequest once it drove stored transactions: a saga with retry_limit Int64.max and a branch that
    /// keeps failing retried at once for as long as the round's budget allowed (for ever on the harness's still
    /// clock): one request, an unbounded number of branch calls. retry_limit is now at most 100.
    @Test("regression: retry_limit Int64.max is refused, not an endless round")
    func retryLimitEndlessRound() async throws {
        let input = try FuzzCorpus.regression("FuzzJSONRequest", "retry-limit-endless-round")
        let (statuses, problems) = await JSONRequestHarness.run(input)
        #expect(statuses.first == 400, "\(statuses)")
        #expect(problems.isEmpty, "\(problems)")
    }

    /// Found while writing the fuzz harnesses: a submit with "retry_interval": Int64.max trapped in
    /// Timestamp.adding (next cron time in microseconds) and took the server down.
    @Test("regression: submit with retry_interval Int64.max is a 400 naming the option")
    func retryIntervalOverflow() async throws {
        let input = try FuzzCorpus.regression("FuzzJSONRequest", "retry-interval-overflow")
        #expect(await JSONRequestHarness.run(input).statuses == [400])
        for (name, bytes) in try FuzzCorpus.files("regressions/FuzzJSONRequest") {
            let problems = await JSONRequestHarness.run(bytes).problems
            #expect(problems.isEmpty, "\(name): \(problems)")
        }
    }
}
