import DTMCore
import DTMHTTP
import Glibc
import Yams

/// The server's configuration, loaded as DTM loads it (spec §12): defaults, then environment variables, then the
/// YAML file given with `-c`, then validation. Unknown keys are accepted and ignored; a bad value stops start-up
/// with a message naming the key.
public struct Configuration: Sendable {
    public var storeDriver = "sqlite"
    public var storeFile = "dtm.sqlite"
    public var httpPort = 36789
    public var grpcPort = 36790
    public var listenHost = "0.0.0.0"
    public var logLevel = "info"
    public var alertWebHook = ""
    public var authToken = ""
    public var grpcMaxMessageSize = 4 * 1024 * 1024
    public var engine = EngineConfig()
    public var http = HTTPServerLimits()
    /// Keys found in the YAML file that swift-dtm does not know (reported at start-up).
    public var ignoredKeys: [String] = []

    public init() {}

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Loads from the process environment and an optional YAML file.
    public static func load(file: String?, environment: [String: String] = ProcessEnvironment.current()) throws -> Configuration {
        var values: [String: String] = [:]
        for (key, defaultValue) in ConfigurationKeys.all {
            let fromEnv = environment[ConfigurationKeys.environmentName(key)] ?? ""
            values[key] = fromEnv.isEmpty ? defaultValue : fromEnv
        }
        var ignored: [String] = []
        if let file {
            let text: String
            do { text = try readFile(file) } catch { throw Invalid(description: "cannot read config file \(file): \(error)") }
            let yaml: Any?
            do { yaml = try Yams.load(yaml: text) } catch { throw Invalid(description: "config file \(file) is not valid YAML: \(error)") }
            if let yaml, !(yaml is [String: Any]) { throw Invalid(description: "config file \(file) must be a YAML mapping") }
            var flat: [String: String] = [:]
            flatten(yaml as? [String: Any] ?? [:], prefix: "", into: &flat)
            let known = Set(ConfigurationKeys.all.map(\.key))
            for (key, value) in flat {
                if known.contains(key) { values[key] = value } else { ignored.append(key) }
            }
        }
        var c = try Configuration(values: values)
        c.ignoredKeys = ignored.sorted()
        return c
    }

    /// Parses and validates raw values.
    init(values: [String: String]) throws {
        func string(_ key: String) -> String { values[key] ?? "" }
        func int(_ key: String) throws -> Int64 {
            let raw = String(string(key).filter { $0 != " " && $0 != "\t" })
            guard let v = Int64(raw) else { throw Invalid(description: "\(key): '\(raw)' is not an integer") }
            return v
        }
        storeDriver = string("Store.Driver")
        storeFile = string("Store.File")
        httpPort = Int(try int("HttpPort"))
        grpcPort = Int(try int("GrpcPort"))
        listenHost = string("ListenHost")
        logLevel = string("LogLevel")
        alertWebHook = string("AlertWebHook")
        engine.transCronInterval = Double(try int("TransCronInterval"))
        engine.timeoutToFail = try int("TimeoutToFail")
        engine.retryInterval = try int("RetryInterval")
        engine.requestTimeout = try int("RequestTimeout")
        engine.alertRetryLimit = try int("AlertRetryLimit")
        engine.cronConcurrency = Int(try int("CronConcurrency"))
        engine.limits.maxSteps = Int(try int("MaxSteps"))
        engine.maxRetryInterval = try int("MaxRetryInterval")
        authToken = string("AuthToken")
        let hosts = string("BranchHostAllowList").split(separator: ",").map { $0.filter { $0 != " " }.lowercased() }.filter { !$0.isEmpty }
        engine.allowedBranchHosts = hosts.isEmpty ? nil : Set(hosts)
        http.maxBodyBytes = Int(try int("MaxRequestBodySize"))
        grpcMaxMessageSize = Int(try int("GrpcMaxMessageSize"))
        http.idleTimeoutSeconds = try int("HttpIdleTimeout")
        http.readTimeoutSeconds = try int("HttpReadTimeout")
        engine.updateBranchSync = try int("UpdateBranchSync") != 0
        for key in ["Store.Port", "JsonRpcPort", "ConfigUpdateInterval", "Store.MaxOpenConns"] { _ = try int(key) }
        try validate()
    }

    func validate() throws {
        guard engine.retryInterval >= 10 else { throw Invalid(description: "RetryInterval should not be less than 10") }
        guard engine.timeoutToFail >= engine.retryInterval else { throw Invalid(description: "TimeoutToFail should not be less than RetryInterval") }
        guard engine.requestTimeout > 0 else { throw Invalid(description: "RequestTimeout must be at least 1 second") }
        guard engine.transCronInterval > 0 else { throw Invalid(description: "TransCronInterval must be at least 1 second") }
        for (key, port) in [("HttpPort", httpPort), ("GrpcPort", grpcPort)] where !(0...65535).contains(port) {
            throw Invalid(description: "\(key): \(port) is not a TCP port")
        }
        guard ["debug", "info", "warn", "error"].contains(logLevel) else {
            throw Invalid(description: "LogLevel: '\(logLevel)' is not one of debug, info, warn, error")
        }
        guard storeDriver == "sqlite" else {
            throw Invalid(description: "Store.Driver: '\(storeDriver)' is not supported; swift-dtm stores in sqlite (the default)")
        }
        guard !storeFile.isEmpty else { throw Invalid(description: "Store.File must name the SQLite database file") }
        guard engine.maxRetryInterval >= 0 else { throw Invalid(description: "MaxRetryInterval must be 0 (no cap) or a number of seconds") }
        guard engine.cronConcurrency >= 1 else { throw Invalid(description: "CronConcurrency must be at least 1") }
        guard engine.limits.maxSteps >= 1 else { throw Invalid(description: "MaxSteps must be at least 1") }
        guard http.maxBodyBytes >= 1024 else { throw Invalid(description: "MaxRequestBodySize must be at least 1024 bytes") }
        guard grpcMaxMessageSize >= 1024 else { throw Invalid(description: "GrpcMaxMessageSize must be at least 1024 bytes") }
        guard http.idleTimeoutSeconds >= 1 else { throw Invalid(description: "HttpIdleTimeout must be at least 1 second") }
        guard http.readTimeoutSeconds >= 1 else { throw Invalid(description: "HttpReadTimeout must be at least 1 second") }
    }

    private static func flatten(_ map: [String: Any], prefix: String, into out: inout [String: String]) {
        for (k, v) in map {
            let key = prefix.isEmpty ? k : "\(prefix).\(k)"
            if let nested = v as? [String: Any] {
                flatten(nested, prefix: key, into: &out)
            } else if String(describing: type(of: v)) == "NSNull" {
                continue  // `key: ~` keeps the default
            } else {
                out[key] = "\(v)"
            }
        }
    }

    private static func readFile(_ path: String) throws -> String {
        guard let f = fopen(path, "r") else { throw Invalid(description: String(cString: strerror(errno))) }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The process environment as a dictionary.
public enum ProcessEnvironment {
    public static func current() -> [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}
