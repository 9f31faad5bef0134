package import DTMCore
package import Logging
import OTel
package import ServiceLifecycle
import Tracing

/// The `Tracing.*` keys of conf.yml. Each stands for an OpenTelemetry environment variable; that variable, when set,
/// wins (README, Tracing).
package struct TracingSettings: Sendable, Equatable {
    package var endpoint = ""
    package var tracesEndpoint = ""
    package var `protocol` = ""
    package var headers = ""
    package var serviceName = "dtm"
    package var resourceAttributes = ""
    package var sampler = ""
    package var samplerArg = ""
    package var maxQueueSize = ""

    package init() {}

    /// Each setting and the variable it stands for.
    var variables: [(name: String, value: String)] {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tracesEndpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", `protocol`), ("OTEL_EXPORTER_OTLP_HEADERS", headers),
            ("OTEL_SERVICE_NAME", serviceName), ("OTEL_RESOURCE_ATTRIBUTES", resourceAttributes),
            ("OTEL_TRACES_SAMPLER", sampler), ("OTEL_TRACES_SAMPLER_ARG", samplerArg), ("OTEL_BSP_MAX_QUEUE_SIZE", maxQueueSize),
        ]
    }

    /// The variables the exporter reads: the settings' values, then the process's tracing variables over them. Only
    /// tracing's: OTEL_SDK_DISABLED, metrics and logs variables would start exporters of their own.
    package func environment(process: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for (name, value) in variables where !value.isEmpty { out[name] = value }
        for (name, value) in process where Self.tracingVariable(name) { out[name] = value }
        return out
    }

    static func tracingVariable(_ name: String) -> Bool {
        name.hasPrefix("OTEL_EXPORTER_OTLP_") && !name.hasPrefix("OTEL_EXPORTER_OTLP_METRICS_") && !name.hasPrefix("OTEL_EXPORTER_OTLP_LOGS_")
            || name.hasPrefix("OTEL_TRACES_") || name.hasPrefix("OTEL_BSP_")
            || ["OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_LOG_LEVEL"].contains(name)
    }

    /// Off by default: on once an OTLP endpoint is set (or `OTEL_TRACES_EXPORTER` names an exporter), unless
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
    package static func isEnabled(environment: [String: String], process: [String: String]) -> Bool {
        if process["OTEL_SDK_DISABLED"]?.lowercased() == "true" { return false }
        let exporter = environment["OTEL_TRACES_EXPORTER"]?.lowercased() ?? ""
        if exporter == "none" { return false }
        if exporter == "otlp" || exporter == "console" { return true }
        return !(environment["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? "").isEmpty || !(environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? "").isEmpty
    }
}

/// Starts swift-otel's tracer and OTLP exporter, or nothing when tracing is off.
package enum TracingSetup {
    /// The tracer for the coordinator and the service that exports its spans (to run first in the server's service
    /// group, so that it stops last and flushes what the listeners' last calls made).
    package static func start(
        settings: TracingSettings, process: [String: String], diagnostics: TracingDiagnostics, logger: Logger
    ) throws -> (tracer: any TransactionTracer, service: any Service)? {
        let environment = settings.environment(process: process)
        guard TracingSettings.isEnabled(environment: environment, process: process) else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = "dtm"
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        // The context is stored with each transaction as `traceparent`/`tracestate`: W3C's format only.
        configuration.propagators = [.traceContext]
        configuration.diagnosticLogger = .custom(diagnostics.logger(base: logger))
        // Its own progress (each setting it read, each batch) is not news to an operator: warnings and errors only,
        // unless OTEL_LOG_LEVEL asks for more.
        configuration.diagnosticLogLevel = .warning
        let service = try OTel.bootstrap(configuration: configuration, environment: environment)
        logger.info(
            "tracing on",
            metadata: [
                "endpoint": .string(environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? environment["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? "(default)"),
                "protocol": .string(environment["OTEL_EXPORTER_OTLP_PROTOCOL"] ?? "http/protobuf"),
                "service_name": .string(environment["OTEL_SERVICE_NAME"] ?? "dtm"),
            ])
        return (tracer(InstrumentationSystem.tracer), BoundedShutdown(service: service, limit: .seconds(2)))
    }

    private static func tracer<Backend: Tracer>(_ backend: Backend) -> any TransactionTracer { OTelTransactionTracer(tracer: backend) }
}

/// A service whose graceful shutdown takes at most `limit`: then it is cancelled. The exporter flushes its last spans
/// on shutdown; with the collector down that would wait for the export timeout (10 s by default) and hold up the
/// server's exit.
struct BoundedShutdown: Service {
    let service: any Service
    let limit: Duration

    func run() async throws {
        // A child task inherits the graceful-shutdown signal (a task local), so the service hears it as before.
        let running = Task { try await service.run() }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await running.value
            } onGracefulShutdown: {
                Task {
                    try? await Task.sleep(for: limit)
                    running.cancel()
                }
            }
        } onCancel: {
            running.cancel()
        }
    }
}
