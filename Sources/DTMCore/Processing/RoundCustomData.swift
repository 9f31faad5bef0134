/// A transaction's `custom_data`, decoded once when its round is set up (the boundary), so that the machines decide
/// on values and never parse text. A stored text the mode cannot read is kept as `unreadable`: the machine backs the
/// round off and logs it instead of running the transaction with a default in its place.
package enum RoundCustomData: Sendable, Equatable {
    /// No custom data (empty), or a mode that has none (TCC, XA).
    case none
    case saga(SagaCustomData)
    case msg(MsgCustomData)
    case workflow(WorkflowCustomData)
    case unreadable(String)

    package static func decode(_ text: String, for type: TransType, coding: any TextCoding) -> RoundCustomData {
        do {
            switch type {
            case .saga: return text.isEmpty ? .none : .saga(try coding.decode(SagaCustomData.self, from: text))
            case .msg: return text.isEmpty ? .none : .msg(try coding.decode(MsgCustomData.self, from: text))
            case .workflow: return .workflow(text.isEmpty ? WorkflowCustomData() : try coding.decode(WorkflowCustomData.self, from: text))
            case .tcc, .xa: return .none
            }
        } catch {
            return .unreadable("custom_data of this \(type.rawValue) cannot be read: \(String("\(error)".prefix(200)))")
        }
    }

    package var saga: SagaCustomData? { if case .saga(let c) = self { c } else { nil } }
    package var msg: MsgCustomData? { if case .msg(let c) = self { c } else { nil } }
    package var workflow: WorkflowCustomData? { if case .workflow(let c) = self { c } else { nil } }
}
