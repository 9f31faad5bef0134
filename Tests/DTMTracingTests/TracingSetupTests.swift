import DTMTracing
import Logging
import Synchronization
import Testing

@Suite("tracing settings and swift-otel's diagnostics")
struct TracingSetupTests {
    @Test("conf.yml's keys stand for OTEL_* variables; the process's tracing variables win; metrics and logs ones are not passed")
    func environment() {
        var settings = TracingSettings()
        settings.endpoint = "http://127.0.0.1:4318"
        settings.protocol = "grpc"
        let env = settings.environment(process: [
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "false", "PATH": "/bin",
        ])
        #expect(env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318")
        #expect(env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf", "the variable wins over the key")
        #expect(env["OTEL_BSP_SCHEDULE_DELAY"] == "100")
        #expect(env["OTEL_SERVICE_NAME"] == "dtm")
        #expect(env["OTEL_METRICS_EXPORTER"] == nil && env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == nil && env["OTEL_SDK_DISABLED"] == nil)
        #expect(env["PATH"] == nil)
    }

    @Test(
        "off unless an endpoint or an exporter is named; OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn it off",
        arguments: [
            ([:], [:], false),
            (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"], [:], true),
            (["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"], [:], true),
            (["OTEL_TRACES_EXPORTER": "otlp"], [:], true),
            (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"], [:], false),
            (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"], ["OTEL_SDK_DISABLED": "true"], false),
        ] as [([String: String], [String: String], Bool)])
    func enabled(environment: [String: String], process: [String: String], expected: Bool) {
        #expect(TracingSettings.isEnabled(environment: environment, process: process) == expected)
    }

    @Test("a warning is logged at most once an interval per message, with the count held back; dropped spans are counted")
    func diagnostics() {
        let clock = Mutex(ContinuousClock.now)
        let dropped = Mutex(0)
        let diagnostics = TracingDiagnostics(interval: .seconds(60), now: { clock.withLock { $0 } }) { n in dropped.withLock { $0 += n } }
        let captured = CapturedLines()
        let logger = diagnostics.logger(base: Logger(label: "t") { _ in CapturingHandler(lines: captured) })
        for _ in 0..<5 { logger.warning("Failed to export batch.", metadata: ["error": "connection refused"]) }
        logger.warning("Spans were dropped this iteration because queue was full", metadata: ["dropped_count": "7"])
        logger.debug("Exported batch.")
        #expect(captured.lines == ["Failed to export batch.", "Spans were dropped this iteration because queue was full", "Exported batch."])
        #expect(dropped.withLock { $0 } == 7)
        clock.withLock { $0 = $0 + .seconds(61) }
        logger.warning("Failed to export batch.")
        #expect(captured.lines.last == "Failed to export batch. held_back=4")
    }
}

final class CapturedLines: Sendable {
    private let state = Mutex<[String]>([])
    var lines: [String] { state.withLock { $0 } }
    func append(_ line: String) { state.withLock { $0.append(line) } }
}

struct CapturingHandler: LogHandler {
    let lines: CapturedLines
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let held = event.metadata?["held_back"].map { " held_back=\($0)" } ?? ""
        lines.append("\(event.message)\(held)")
    }
}
