/// `custom_data` of a saga: `{"orders":{"1":[0]},"concurrent":true}` (0-based step indices).
package struct SagaCustomData: Sendable, Equatable, Decodable {
    package var orders: [String: [Int]]?
    package var concurrent: Bool?

    package init(orders: [String: [Int]]? = nil, concurrent: Bool? = nil) {
        self.orders = orders
        self.concurrent = concurrent
    }
}

/// The ordering rules of a saga (spec §8.2 steps 4–5), as pure functions of the branch statuses.
///
/// Branch rows are laid out `[compensate 1, action 1, compensate 2, action 2, …]`: row 2k is the compensation
/// and row 2k+1 the action of step k.
package struct SagaPlan: Sendable, Equatable {
    package let stepCount: Int
    package let concurrent: Bool
    /// `orders[k]`: steps whose action must have succeeded before step k's action may start.
    package let orders: [[Int]]
    /// `reverseOrders[j]`: steps that listed j as a prerequisite (they must be rolled back before j).
    package let reverseOrders: [[Int]]

    /// A sequential saga of `stepCount` steps without `orders`.
    package init(sequentialSteps stepCount: Int) {
        self.stepCount = stepCount
        self.concurrent = false
        self.orders = Array(repeating: [], count: max(stepCount, 0))
        self.reverseOrders = self.orders
    }

    package init(stepCount: Int, customData: SagaCustomData?) throws(DTMError) {
        self.stepCount = stepCount
        self.concurrent = customData?.concurrent ?? false
        var orders = Array(repeating: [Int](), count: stepCount)
        var reverse = Array(repeating: [Int](), count: stepCount)
        for (key, prerequisites) in customData?.orders ?? [:] {
            guard let k = Int(key), k >= 0, k < stepCount else {
                throw .invalidArgument("custom_data orders names step '\(key)', but the saga has \(stepCount) steps")
            }
            for p in prerequisites {
                guard p >= 0, p < stepCount, p != k else {
                    throw .invalidArgument("custom_data orders: step \(k) depends on step \(p), which is not another step of this saga")
                }
                orders[k].append(p)
                reverse[p].append(k)
            }
        }
        self.orders = orders
        self.reverseOrders = reverse
    }

    @inline(__always) package static func actionIndex(_ step: Int) -> Int { 2 * step + 1 }
    @inline(__always) package static func compensateIndex(_ step: Int) -> Int { 2 * step }

    /// Whether step k's action may start: in a sequential saga the previous action must have succeeded,
    /// and every prerequisite of `orders` must have succeeded.
    package func shouldRunAction(_ k: Int, statuses: [BranchStatus]) -> Bool {
        if !concurrent && k >= 1 && statuses[SagaPlan.actionIndex(k - 1)] != .succeed { return false }
        return orders[k].allSatisfy { statuses[SagaPlan.actionIndex($0)] == .succeed }
    }

    /// A step is rolled back when its compensation succeeded or its action never ran.
    package func isRolledBack(_ k: Int, statuses: [BranchStatus]) -> Bool {
        statuses[SagaPlan.compensateIndex(k)] == .succeed || statuses[SagaPlan.actionIndex(k)] == .prepared
    }

    /// Whether step k's compensation may start: strictly after the later step in a sequential saga, and after
    /// every step that depended on k.
    package func shouldRollback(_ k: Int, statuses: [BranchStatus]) -> Bool {
        if isRolledBack(k, statuses: statuses) { return false }
        if !concurrent && k < stepCount - 1 && !isRolledBack(k + 1, statuses: statuses) { return false }
        return reverseOrders[k].allSatisfy { isRolledBack($0, statuses: statuses) }
    }
}
