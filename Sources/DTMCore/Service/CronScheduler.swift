import Logging

extension Coordinator {
    /// One cron pass (spec §9.1–9.2): claims up to `cronConcurrency` due transactions and runs one round of each,
    /// concurrently, returning when all are done. Returns the gids claimed. `expireIn` moves the due line
    /// forward (as DTM's tests do).
    @discardableResult
    public func cronOnce(expireIn: Double = 0) async -> [String] {
        let claimed = await claimDue(limit: config.cronConcurrency, expireIn: expireIn)
        await withTaskGroup(of: Void.self) { group in
            for transaction in claimed { group.addTask { await self.processClaimed(transaction) } }
        }
        return claimed.map(\.gid)
    }

    /// The cron loop: keeps up to `cronConcurrency` rounds in flight and claims more as each one ends, so a
    /// slow branch never holds up the transactions behind it. When nothing is due and nothing runs it sleeps
    /// `TransCronInterval − U[0,1)` seconds, or less if `resetNextCronTime` wakes it. Runs until cancelled.
    public func runCron() async {
        context.logger.info("cron loop started", metadata: ["interval": .stringConvertible(config.transCronInterval)])
        // Children are rounds and at most one pause; whichever ends first lets the loop look again.
        enum Child { case round, pause }
        await withTaskGroup(of: Child.self) { group in
            var inFlight = 0
            var pausing = false
            func waitForChild() async {
                switch await group.next() {
                case .round: inFlight -= 1
                case .pause: pausing = false
                case nil: break
                }
            }
            while !Task.isCancelled {
                if inFlight >= config.cronConcurrency {
                    await waitForChild()
                    continue
                }
                let claimed = await claimDue(limit: config.cronConcurrency - inFlight, expireIn: 0)
                for transaction in claimed {
                    inFlight += 1
                    group.addTask {
                        await self.processClaimed(transaction)
                        return .round
                    }
                }
                if !claimed.isEmpty { continue }
                if !pausing {
                    pausing = true
                    group.addTask {
                        await self.pauseUntilDueOrWoken()
                        return .pause
                    }
                }
                await waitForChild()
            }
            group.cancelAll()
        }
        context.logger.info("cron loop stopped")
    }

    private func pauseUntilDueOrWoken() async {
        let pause = max(0.05, config.transCronInterval - Double.random(in: 0..<1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await self.context.clock.sleep(seconds: pause) }
            group.addTask { await self.cronWake.wait() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Claims due transactions with a lease of RetryInterval (spec §9.2).
    private func claimDue(limit: Int, expireIn: Double) async -> [GlobalTransaction] {
        let at = now
        do {
            return try await store.claimDue(
                dueBefore: at.adding(seconds: expireIn), leaseUntil: at.adding(seconds: Double(config.retryInterval)),
                owner: GidGenerator.owner(), limit: limit, now: at)
        } catch {
            context.logger.error("cron could not claim transactions", metadata: ["error": .string("\(error)")])
            return []
        }
    }

    /// One round of a claimed transaction with wait_result semantics; the outcome is only logged.
    private func processClaimed(_ transaction: GlobalTransaction) async {
        context.logger.debug("cron claimed", metadata: ["gid": .string(transaction.gid), "status": .string(transaction.status.rawValue)])
        do {
            let branches = try await store.branches(gid: transaction.gid)
            _ = await runRoundLogged(transaction, branches: branches)
        } catch {
            context.logger.error("cron could not load branches", metadata: ["gid": .string(transaction.gid), "error": .string("\(error)")])
        }
    }
}
