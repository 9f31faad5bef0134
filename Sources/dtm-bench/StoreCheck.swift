/// Cross-checks completion in the coordinator's store: `GET /api/dtmsvr/query?gid=` for a sample of the
/// accepted sagas, counting the transaction statuses found.
enum StoreCheck {
    static func run(httpTarget: String, gids: [String]) async -> [String: Int] {
        var statuses: [String: Int] = [:]
        guard !gids.isEmpty, let connection = try? await HTTPClientConnection.connect(httpTarget) else {
            if !gids.isEmpty { statuses["unreachable"] = gids.count }
            return statuses
        }
        for gid in gids {
            let status: String
            if let answer = try? await connection.request(.GET, "/api/dtmsvr/query?gid=\(gid)") {
                status = answer.status == 200 ? transactionStatus(answer.body) : "http \(answer.status)"
            } else {
                status = "error"
            }
            statuses[status, default: 0] += 1
        }
        await connection.close()
        return statuses
    }

    /// `transaction.status` of a query answer (`{"transaction":{…,"status":"succeed",…},"branches":[…]}`),
    /// found by scanning: the first `"status":"` after `"transaction":{`.
    static func transactionStatus(_ body: [UInt8]) -> String {
        let text = String(decoding: body, as: UTF8.self)
        guard let t = text.firstRange(of: #""transaction":{"#) else { return "missing" }
        guard let s = text[t.upperBound...].firstRange(of: #""status":""#) else { return "no status" }
        let rest = text[s.upperBound...]
        return String(rest.prefix { $0 != "\"" })
    }

    /// Up to `count` gids spread evenly over the accepted sagas.
    static func sample(_ load: LoadOutcome, count: Int, gidPrefix: String) -> [String] {
        let seqs = load.starts.map(\.seq).sorted()
        guard !seqs.isEmpty, count > 0 else { return [] }
        let step = max(1, seqs.count / count)
        return stride(from: 0, to: seqs.count, by: step).prefix(count).map { "\(gidPrefix)\(seqs[$0])" }
    }
}
