import DTMCore
import DTMGRPC
import Etcd
import Logging
import NIOSSL
import ServiceLifecycle

/// go-zero's naming over etcd (`MicroService.Driver: dtm-driver-gozero`): resolves `etcd://` and `discov://` gRPC
/// branch URLs through `EtcdDiscovery`, whose watched sets serve every call.
struct GoZeroResolver: GRPCServiceResolver {
    let discovery: EtcdDiscovery

    func addresses(for target: DiscoveryTarget) async -> Result<[String], DTMError> {
        await discovery.addresses(hosts: target.hosts, key: target.key, limit: GRPCBranchCaller.maxAddressesPerCall)
            .mapError { DTMError.other($0.message) }
    }

    func markFailed(_ address: String, for target: DiscoveryTarget) {
        discovery.markFailed(hosts: target.hosts, key: target.key, address: address)
    }
}

/// Registers the coordinator under `MicroService.Target` once both listeners are up (`listenersUp` yields), and
/// revokes the registration on graceful shutdown, before the listeners stop.
struct RegistrationService: Service {
    let publisher: ServicePublisher
    let listenersUp: AsyncStream<Void>

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in listenersUp { break }
            if Task.isCancelled { return }
            await publisher.run()
        }
    }
}

extension EtcdDiscovery {
    /// The discovery of a configuration with go-zero's driver, with the credentials of its `MicroService.Target`
    /// and `tls` (`MicroService.Etcd*File`) for that cluster; nil without the driver. `onOversized` counts the
    /// etcd entries dropped for their size.
    static func make(
        for configuration: Configuration, tls: NIOSSLContext?, logger: Logger,
        onOversized: @escaping @Sendable (EtcdEntryLimits.Reason, Int) -> Void
    ) -> EtcdDiscovery? {
        guard configuration.resolvesDiscoveryURLs else { return nil }
        var credentials: [String: EtcdDiscovery.Credentials] = [:]
        if let target = configuration.microServiceTarget, !target.user.isEmpty || tls != nil {
            credentials[target.cluster] = .init(user: target.user, password: target.password, tls: tls)
        }
        return EtcdDiscovery(credentials: credentials, addressOf: GRPCBranchCaller.dialable, logger: logger, onOversized: onOversized)
    }
}
