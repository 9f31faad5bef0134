import DTMCore
import DTMTestSupport
@testable import DTMHTTP
import Foundation
import Logging
import Testing

@Suite("paging past the row limit")
struct PagingLimitTests {
    @Test("all?limit beyond 10,000 answers 10,000 rows and a next_position that leads to the rest")
    func clampedPagesLeadOn() async throws {
        let store = InMemoryStore()
        for i in 0..<10_005 {
            _ = try await store.saveNew(
                GlobalTransaction(gid: "p\(i)", transType: .saga, status: .succeed, createTime: ManualClock().now()), branches: [])
        }
        let coordinator = Coordinator(
            context: ProcessingContext(
                store: store, caller: BranchCallRouter(http: ScriptedCaller(), grpc: ScriptedCaller()), clock: ManualClock(sleepCancels: true),
                coding: JSONTextCoding(),
                config: EngineConfig(), logger: Logger(label: "test")))
        let router = APIRouter(coordinator: coordinator, version: "test", logger: Logger(label: "test"))
        func page(_ query: String) async throws -> (count: Int, next: String) {
            let response = await router.handle(method: "GET", uri: "/api/dtmsvr/all?" + query, body: [])
            #expect(response.status == 200)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
            return ((object["transactions"] as? [Any])?.count ?? -1, object["next_position"] as? String ?? "")
        }
        let first = try await page("limit=99999999999999999999")
        #expect(first.count == 10_000)
        #expect(!first.next.isEmpty)
        let second = try await page("limit=100000&position=\(first.next)")
        #expect(second.count == 5)
        #expect(second.next.isEmpty)
    }

}
