import Logging

extension Coordinator {
    /// One cron pass (spec §9.1–9.2): claims up to `cronConcurrency` due transactions and runs one round of each,
    /// concurrently, returning when all are done. Returns the gids claimed. `expireIn` moves the due line
    /// forward (as DTM's tests do).
    @discardableResult
    package func cronOnce(expireIn: Double = 0) async -> [String] {
        let claimed = await claimDue(limit: config.cronConcurrency, expireIn: expireIn)
        await withTaskGroup(of: Void.self) { group in
            for transaction in claimed { group.addTask { await self.processClaimed(transaction) } }
        }
        return claimed.map(\.gid)
    }

    /// The cron loop: keeps up to `cronConcurrency` rounds in flight and claims more as each one ends, so a
    /// slow branch never holds up the transactions behind it. When nothing is due and nothing runs it sleeps
    /// `TransCronInterval − U[0,1)` seconds, or less if `resetNextCronTime` wakes it. Runs until cancelled.
    package func runCron() async {
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

    /// Claims due transactions with a lease of RetryInterval (spec §9.2), in this process's name; a round renews the
    /// lease before each call it starts (`TransactionRound.holdLease`).
    private func claimDue(limit: Int, expireIn: Double) async -> [GlobalTransaction] {
        let at = now
        do {
            return try await store.claimDue(
                dueBefore: at.adding(seconds: expireIn), leaseUntil: at.adding(seconds: Double(config.retryInterval)),
                owner: context.leaseOwner, limit: limit, now: at)
        } catch {
            context.logger.error("cron could not claim transactions", metadata: ["error": .string("\(error)")])
            return []
        }
    }

    /// One round of a claimed transaction with wait_result semantics, within `roundTimeout` seconds; the
    /// outcome is only logged. A round that throws (a stored row it cannot process, a store error) or runs out of
    /// time is backed off, so that one transaction can neither stop the loop nor hold a slot of it for good.
    private func processClaimed(_ transaction: GlobalTransaction) async {
        let gid = transaction.gid
        // Claimed while its first round still runs here (a backlog made it due): that round goes on; reading its
        // branches for a round that would not run is wasted work, and under overload there are many.
        if isRunningHere(gid) { return }
        context.logger.debug("cron claimed", metadata: ["gid": .string(gid), "status": .string(transaction.status.rawValue)])
        let ended = await withTaskGroup(of: ClaimedRoundEnd.self) { group in
            group.addTask {
                do {
                    let branches = try await self.store.branches(gid: gid)
                    let backedOff = self.config.backOffLevel(interval: transaction.nextCronInterval, options: transaction.options) > 0
                    let (result, _) = try await self.runRound(transaction, branches: branches, reason: backedOff ? .retry : .cron)
                    if case .error(let m) = result {
                        self.context.logger.warning("round ended with an error", metadata: ["gid": .string(gid), "error": .string(m)])
                    }
                    return .finished
                } catch {
                    return .threw("\(error)")
                }
            }
            // A watchdog on real time, not on the injected clock: it bounds how long the round holds a slot.
            group.addTask {
                do { try await Task.sleep(for: .milliseconds(Saturating.int64(clamping: self.config.roundTimeout * 1000))) } catch {
                    return .cancelled
                }
                return .timedOut
            }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            return first
        }
        switch ended {
        case .finished, .cancelled:
            return
        case .threw(let error):
            context.logger.error("round failed; backing off", metadata: ["gid": .string(gid), "error": .string(error)])
        case .timedOut:
            context.logger.warning(
                "round ran out of time (RoundTimeout); backing off", metadata: ["gid": .string(gid), "seconds": .stringConvertible(config.roundTimeout)])
        }
        await backOff(gid: gid)
    }

    /// Moves a transaction's next round out by the doubled interval, from what is stored now.
    private func backOff(gid: String) async {
        do {
            guard let stored = try await store.transaction(gid: gid), !stored.status.isFinished else { return }
            let interval = config.nextInterval(.backOff, current: stored.nextCronInterval, options: stored.options)
            try await store.touchCronTime(
                gid: gid, requiring: stored.status, interval: interval, nextCronTime: now.adding(seconds: Double(interval)), now: now)
        } catch {
            context.logger.error("could not back off a failed round", metadata: ["gid": .string(gid), "error": .string("\(error)")])
        }
    }
}

private enum ClaimedRoundEnd: Sendable {
    case finished, threw(String), timedOut, cancelled
}
