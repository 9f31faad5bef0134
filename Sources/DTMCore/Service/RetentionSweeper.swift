extension Coordinator {
    /// Retention (`Store.FinishedDataExpire`): deletes finished transactions last updated more than
    /// `finishedDataExpire` seconds ago, with their branches, in batches of `batch` with a pause between them, so
    /// that the deletes never hold the store for long. Returns how many transactions went.
    @discardableResult
    package func sweepFinished(finishedDataExpire: Int64, batch: Int = 500, pause: Double = 0.05) async -> Int {
        guard finishedDataExpire > 0 else { return 0 }
        let before = now.adding(seconds: -Double(finishedDataExpire))
        var total = 0
        while !Task.isCancelled {
            let deleted: Int
            do {
                deleted = try await store.deleteFinished(before: before, limit: batch)
            } catch {
                context.logger.error("retention could not delete finished transactions", metadata: ["error": .string("\(error)")])
                break
            }
            total += deleted
            if deleted < batch { break }
            try? await context.clock.sleep(seconds: pause)
        }
        if total > 0 {
            context.logger.info(
                "retention deleted finished transactions",
                metadata: ["count": .stringConvertible(total), "older_than_seconds": .stringConvertible(finishedDataExpire)])
        }
        return total
    }

    /// Sweeps every `interval` seconds until cancelled (the first sweep right away).
    package func runRetention(finishedDataExpire: Int64, interval: Double = 60) async {
        guard finishedDataExpire > 0 else { return }
        context.logger.info("retention started", metadata: ["finished_data_expire": .stringConvertible(finishedDataExpire)])
        while !Task.isCancelled {
            await sweepFinished(finishedDataExpire: finishedDataExpire)
            do { try await context.clock.sleep(seconds: interval) } catch { break }
        }
    }
}
