import AsyncHTTPClient
import DTMCore
import DTMGRPC
import DTMHTTP
import HTTP2
import DTMMetrics
import DTMTracing
import Etcd
import EventLoopSupport
package import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The composition root: opens the store, builds the Coordinator with its branch callers, starts the HTTP
/// listener and the cron loop, and shuts everything down in order on SIGINT/SIGTERM.
package enum DTMServerApp {
    package static func run(configuration: Configuration, reset: Bool, logger: Logger) async throws {
        CrashGuard.install(logger: logger)
        DescriptorLimit.raise(for: configuration.http.maxConnections, logger: logger)
        if configuration.engine.branchHostAllowList == nil {
            logger.warning("BranchHostAllowList is empty: transactions may make this server call any host (as DTM does)")
        }
        if configuration.boltdbAsSQLite {
            logger.notice(
                "Store.Driver boltdb (DTM's embedded store) runs swift-dtm's embedded store: a SQLite file; DTM's BoltDB files are not read",
                metadata: ["file": .string(configuration.storeFile)])
        }
        if configuration.microServiceTargetIgnored {
            logger.notice("MicroService.Target is not used with MicroService.Driver 'default' (set it to dtm-driver-gozero to register in etcd)")
        }
        for key in configuration.ignoredKeys {
            logger.notice("configuration key is not used by swift-dtm and is ignored", metadata: ["key": .string(key)])
        }
        let tls = try TLSSetup(configuration)
        let opened: OpenedStore
        do {
            opened = try await OpenedStore.open(configuration, reset: reset, logger: logger)
        } catch {
            logger.error("cannot open the store", metadata: ["driver": .string(configuration.storeDriver), "error": .string("\(error)")])
            throw error
        }
        let store = opened.store

        let group = MultiThreadedEventLoopGroup.singleton
        let httpClient = HTTPBranchCaller.makeClient(eventLoopGroup: group, tls: tls.httpBranches)
        let plainHTTP = HTTPBranchCaller.makePlainHTTPPool(
            eventLoopGroup: group, idleTimeout: .seconds(configuration.http.idleTimeoutSeconds), logger: logger)
        var poolConfiguration = GRPCConnectionPool.Configuration()
        poolConfiguration.idleTimeout = .seconds(configuration.http.idleTimeoutSeconds)
        poolConfiguration.tls = tls.grpcBranches
        let grpcPool = GRPCConnectionPool(group: group, configuration: poolConfiguration, logger: logger)
        let metrics = DTMMetrics(version: DTMVersion.current)
        let tracing: (tracer: any TransactionTracer, service: any Service)?
        do {
            tracing = try TracingSetup.start(
                settings: configuration.tracing, process: ProcessEnvironment.current(),
                diagnostics: TracingDiagnostics { metrics.traceSpansDropped(count: $0) }, logger: logger)
        } catch {
            logger.error("cannot start tracing", metadata: ["error": .string("\(error)")])
            await opened.close()
            throw error
        }
        let discovery = EtcdDiscovery.make(for: configuration, tls: tls.etcd, logger: logger) { reason, count in
            metrics.etcdEntriesDropped(reason: reason.rawValue, count: count)
        }
        let grpcCaller = GRPCBranchCaller(
            transport: GRPCPoolTransport(pool: grpcPool), resolver: discovery.map { GoZeroResolver(discovery: $0) },
            allowList: configuration.engine.branchHostAllowList)
        let caller = BranchCallRouter(
            http: HTTPBranchCaller(client: httpClient, plainHTTP: plainHTTP), grpc: grpcCaller,
            allowList: configuration.engine.branchHostAllowList)
        let coordinator = Coordinator(
            context: ProcessingContext(
                store: store, caller: caller, clock: SystemClock(), coding: JSONTextCoding(),
                config: configuration.engine, logger: logger,
                alerts: configuration.alertWebHook.isEmpty
                    ? nil : AlertWebHook(url: configuration.alertWebHook, client: httpClient, logger: logger),
                observer: metrics, tracer: tracing?.tracer, roundExecutor: { RoundExecutor.preferred }))
        let access = AccessPolicy(authToken: configuration.authToken, adminToken: configuration.adminToken)
        if let openAPIs = AccessPolicy.openAPIsWarning(authToken: configuration.authToken, adminToken: configuration.adminToken) {
            logger.warning("\(openAPIs)")
        }
        let router = APIRouter(
            coordinator: coordinator, version: DTMVersion.current, metrics: metrics, access: access, consoleBasePath: configuration.adminBasePath,
            browser: BrowserOriginPolicy(allowedHosts: configuration.allowedHosts, listenHost: configuration.listenHost), logger: logger)
        let http = HTTPAPIServer(router: router, limits: configuration.http, group: group, tls: tls.http, logger: logger)
        // The clients and the store, closed once whichever way the server ends.
        func closeClients() async {
            try? await httpClient.shutdown()
            plainHTTP.shutdown()
            await grpcPool.shutdown()
            await discovery?.shutdown()
            await opened.close()
        }
        let grpc: DtmGRPCListener
        do {
            grpc = try await DtmGRPCListener.start(
                host: configuration.listenHost, port: configuration.grpcPort, service: DtmService(coordinator: coordinator, logger: logger),
                maxMessageSize: configuration.grpcMaxMessageSize, access: access, metrics: metrics,
                requestReadTimeout: .seconds(configuration.http.readTimeoutSeconds), idleTimeout: .seconds(configuration.http.idleTimeoutSeconds),
                maxConnections: configuration.http.maxConnections, tls: tls.grpc,
                pendingBytes: .init(perConnection: configuration.grpcMaxPendingBytesPerConnection, perProcess: configuration.grpcMaxPendingBytes),
                group: group, logger: logger)
        } catch {
            logger.error(
                "cannot start the gRPC listener",
                metadata: ["host": .string(configuration.listenHost), "port": .stringConvertible(configuration.grpcPort), "error": .string("\(error)")])
            await closeClients()
            throw error
        }

        logger.info(
            "swift-dtm starting",
            metadata: [
                "version": .string(DTMVersion.current), "http_port": .stringConvertible(configuration.httpPort),
                "grpc_port": .stringConvertible(grpc.port),
                "store": .string(opened.location), "tls": .stringConvertible(tls.http != nil),
            ])
        let (listenersUp, listenersUpContinuation) = AsyncStream<Void>.makeStream()
        var lifecycle: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(
                service: HTTPService(server: http, host: configuration.listenHost, port: configuration.httpPort) { _ in
                    CrashGuard.markSocketsCloseOnExec(logger: logger)
                    listenersUpContinuation.yield()  // the gRPC listener is already up
                    listenersUpContinuation.finish()
                }),
            .init(service: GRPCService(listener: grpc)),
            .init(service: CronService(coordinator: coordinator)),
        ]
        if let tracing {
            // First in the group: graceful shutdown stops it last, so the spans of the last calls are exported.
            lifecycle.insert(.init(service: tracing.service), at: 0)
        }
        if configuration.finishedDataExpire > 0 {
            lifecycle.append(.init(service: RetentionService(coordinator: coordinator, finishedDataExpire: configuration.finishedDataExpire)))
        }
        if let target = configuration.microServiceTarget, let discovery {
            if let client = discovery.client(hosts: target.hosts, pinned: true) {
                let publisher = ServicePublisher(client: client, key: target.key, value: configuration.microServiceEndPoint, logger: logger)
                // Last in the group: graceful shutdown stops it first, so the registration is revoked while the
                // listeners still answer.
                lifecycle.append(.init(service: RegistrationService(publisher: publisher, listenersUp: listenersUp)))
            }
        }
        let services = ServiceGroup(
            configuration: .init(
                services: lifecycle,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await services.run()
        } catch {
            logger.error("server stopped with an error", metadata: ["error": .string("\(error)")])
            await grpc.shutdown()
            await closeClients()
            throw error
        }
        // Let background rounds started by submits finish (their branch calls are bounded by request timeouts).
        let deadline = ContinuousClock.now + .seconds(configuration.engine.requestTimeout + 2)
        while coordinator.backgroundRoundCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        await closeClients()
        logger.info("swift-dtm stopped")
    }
}

/// The HTTP listener as a lifecycle service: graceful shutdown stops accepting and drains requests.
struct HTTPService: Service {
    let server: HTTPAPIServer
    let host: String
    let port: Int
    let onBound: @Sendable (Int) -> Void

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.run(host: host, port: port, onBound: onBound)
        } onGracefulShutdown: {
            Task { await server.shutdown() }
        }
    }
}

/// The gRPC listener as a lifecycle service: runs until graceful shutdown, then sends GOAWAY and lets
/// in-flight calls finish.
struct GRPCService: Service {
    let listener: DtmGRPCListener

    func run() async throws {
        // Returns on graceful shutdown (or cancellation); the listener serves on its own channels meanwhile.
        try? await gracefulShutdown()
        await listener.shutdown()
    }
}

/// The cron loop as a lifecycle service: cancelled on graceful shutdown (a claimed transaction whose round is
/// cut short is simply claimed again after its lease).
struct CronService: Service {
    let coordinator: Coordinator

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await coordinator.runCron()
        }
    }
}

/// Retention (`Store.FinishedDataExpire`) as a lifecycle service.
struct RetentionService: Service {
    let coordinator: Coordinator
    let finishedDataExpire: Int64

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await coordinator.runRetention(finishedDataExpire: finishedDataExpire)
        }
    }
}
