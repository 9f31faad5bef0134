import Logging

extension Coordinator {
    /// One cron pass (spec §9.1–9.2): claims up to `cronConcurrency` due transactions and runs one round of each,
    /// concurrently. Returns the gids claimed. `expireIn` moves the due line forward (as DTM's tests do).
    @discardableResult
    public func cronOnce(expireIn: Double = 0) async -> [String] {
        let at = now
        let claimed: [GlobalTransaction]
        do {
            claimed = try await store.claimDue(
                dueBefore: at.adding(seconds: expireIn), leaseUntil: at.adding(seconds: Double(config.retryInterval)),
                owner: GidGenerator.owner(), limit: config.cronConcurrency, now: at)
        } catch {
            context.logger.error("cron could not claim transactions", metadata: ["error": .string("\(error)")])
            return []
        }
        await withTaskGroup(of: Void.self) { group in
            for transaction in claimed {
                group.addTask {
                    self.context.logger.debug(
                        "cron claimed", metadata: ["gid": .string(transaction.gid), "status": .string(transaction.status.rawValue)])
                    do {
                        let branches = try await self.store.branches(gid: transaction.gid)
                        _ = await self.runRoundLogged(transaction, branches: branches)
                    } catch {
                        self.context.logger.error("cron could not load branches", metadata: ["gid": .string(transaction.gid), "error": .string("\(error)")])
                    }
                }
            }
        }
        return claimed.map(\.gid)
    }

    /// The cron loop: claims and processes due transactions until the task is cancelled. When nothing is due it
    /// sleeps `TransCronInterval − U[0,1)` seconds, or less if `resetNextCronTime` wakes it.
    public func runCron() async {
        context.logger.info("cron loop started", metadata: ["interval": .stringConvertible(config.transCronInterval)])
        while !Task.isCancelled {
            let gids = await cronOnce()
            if !gids.isEmpty { continue }
            let pause = max(0.05, config.transCronInterval - Double.random(in: 0..<1))
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await self.context.clock.sleep(seconds: pause) }
                group.addTask { await self.cronWake.wait() }
                await group.next()
                group.cancelAll()
            }
        }
        context.logger.info("cron loop stopped")
    }
}
