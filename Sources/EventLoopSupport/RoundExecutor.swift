/// Where the rounds a request starts in the background should run: a scheduling hint of the NIO adapters, handed
/// to the core as `ProcessingContext.roundExecutor` (the core itself knows no event loops).
package enum RoundExecutor {
    /// Set by a listener around its handling of a request: the executor the request runs on (for gRPC, its
    /// connection's event loop), so that the saga it submitted is processed there too, with its branch calls
    /// on connections of that loop and no thread hop per call. nil: the global concurrent executor.
    @TaskLocal package static var preferred: (any TaskExecutor)?
}
