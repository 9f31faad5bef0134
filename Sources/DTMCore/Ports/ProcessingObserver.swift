/// Receives what the state engine does, for metrics (spec §13). Implementations must be cheap: they are called
/// on every round and every branch call.
package protocol ProcessingObserver: Sendable {
    /// A processing round ended; `failed` when it returned an error (`dtm_transaction_process_total`).
    func roundFinished(transType: TransType, failed: Bool, secondsSinceCreate: Double)
    /// A branch call was recorded; `succeeded` when the branch is now `succeed` (`dtm_branch_process_total`).
    func branchFinished(transType: TransType, op: String, succeeded: Bool)
}
