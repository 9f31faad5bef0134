/// `custom_data` of a workflow: `{"data":"<base64 input>","name":"<workflow name>"}`.
package struct WorkflowCustomData: Sendable, Equatable, Codable {
    package var data: String?
    package var name: String?
    package init(data: String? = nil, name: String? = nil) {
        self.data = data
        self.name = name
    }
}

/// Workflow rounds (spec §8.6): the workflow runs in the client; the server only resumes an unfinished one by
/// calling `query_prepared` (branch `00`, op = the workflow name, payload = its input). The answer changes
/// nothing here: the resumed client finishes the workflow through the normal API.
package struct WorkflowProcessor: ModeProcessor {
    package init() {}
    package func round() -> WorkflowRound { WorkflowRound() }
}

package struct WorkflowRound: RoundStateMachine {
    package mutating func next(_ event: RoundEvent, _ facts: any RoundFacts, _ actions: inout [RoundAction]) {
        switch event {
        case .started:
            let t = facts.transaction
            guard !t.status.isFinished else { return actions.append(.finish(.ok)) }
            if facts.stopIfUnreadable(&actions) { return }
            let custom = facts.customData.workflow ?? WorkflowCustomData()
            var payload = Base64.decode(custom.data ?? "") ?? []
            if t.transProtocol == TransProtocol.grpc {
                payload = WorkflowProcessor.workflowDataMessage(payload)
            }
            actions.append(.checkBack(url: t.queryPrepared, op: custom.name ?? "", payload: payload))
        case .checkBackAnswered(.error(let m)):
            actions.append(.warn("workflow resume call failed", error: m))
            actions.append(.finish(.ok))
        case .checkBackAnswered:
            actions.append(.finish(.ok))
        case .branchFinished, .idle:
            impossibleEvent("workflow event \(event) (a workflow round makes no branch call)", &actions)
        }
    }
}

extension WorkflowProcessor {
    /// The protobuf encoding of `workflow.WorkflowData { bytes Data = 1; }`: field 1, wire type 2, then the
    /// varint length and the bytes (empty input encodes as an empty message).
    static func workflowDataMessage(_ data: [UInt8]) -> [UInt8] {
        guard !data.isEmpty else { return [] }
        var out: [UInt8] = [0x0A]
        var n = UInt64(data.count)
        while n >= 0x80 {
            out.append(UInt8(n & 0x7F) | 0x80)
            n >>= 7
        }
        out.append(UInt8(n))
        return out + data
    }
}
