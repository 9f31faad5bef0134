import ArgumentParser
internal import CMimalloc
import DTMServer
import Glibc

/// `dtm-server`, with DTM's flags: `-c FILE`, `-v`, `-r`, `-d`.
@main
struct DTMServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dtm-server",
        abstract: "A distributed transaction coordinator, wire-compatible with DTM.")

    @Option(name: .customShort("c"), help: "YAML configuration file (DTM's keys).")
    var config: String?

    @Flag(name: .customShort("v"), help: "Print the version and exit.")
    var version = false

    @Flag(name: .customShort("r"), help: "Reset the store (drop and recreate every table) before starting.")
    var reset = false

    @Flag(name: .customShort("d"), help: "Set the log level to debug.")
    var debug = false

    func run() async throws {
        if version {
            print(DTMVersion.current)
            return
        }
        var configuration: Configuration
        do {
            configuration = try Configuration.load(file: config)
        } catch {
            let message = Array("dtm-server: \(error)\n".utf8)
            _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            throw ExitCode(2)
        }
        if debug { configuration.logLevel = "debug" }
        let logger = LoggingSetup.bootstrap(level: configuration.logLevel)
        logger.info("allocator", metadata: ["mimalloc": .stringConvertible(mi_version())])
        do {
            try await DTMServerApp.run(configuration: configuration, reset: reset, logger: logger)
        } catch {
            logger.critical("dtm-server cannot run", metadata: ["error": .string("\(error)")])
            throw ExitCode(1)
        }
    }
}
