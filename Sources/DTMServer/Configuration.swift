package import DTMTracing
package import DTMCore
package import DTMHTTP
import Glibc
package import MySQLStore
package import PostgresStore
import Yams

/// The server's configuration, loaded as DTM loads it (spec §12): defaults, then environment variables, then the
/// YAML file given with `-c`, then validation. Unknown keys are accepted and ignored; a bad value stops start-up
/// with a message naming the key.
package struct Configuration: Sendable {
    package var storeDriver = "sqlite"
    /// `Store.Driver: boltdb` (DTM's default, often written out) was read as the embedded store: said at start-up.
    package var boltdbAsSQLite = false
    package var storeFile = "dtm.sqlite"
    /// `Store.*` of the `postgres` driver.
    package var postgres = PostgresStoreConfiguration()
    /// `Store.*` of the `mysql` driver (the same keys).
    package var mysql = MySQLStoreConfiguration()
    /// `Store.FinishedDataExpire`, seconds: finished transactions older than this are deleted; 0 keeps them.
    package var finishedDataExpire: Int64 = 0
    /// `AdminBasePath`: the prefix of the admin console's pages (empty, or `/prefix`).
    package var adminBasePath = ""
    /// Store drivers `Store.Driver` accepts.
    package static let storeDrivers = ["sqlite", "postgres", "mysql"]
    package var httpPort = 36789
    package var grpcPort = 36790
    package var listenHost = "0.0.0.0"
    package var logLevel = "info"
    package var alertWebHook = ""
    package var authToken = ""
    /// Token of the admin APIs; empty: `authToken` guards them too.
    package var adminToken = ""
    /// `AllowedHosts`: the names the HTTP API may be reached by (`Host`), besides IP literals and `localhost`;
    /// empty: see `BrowserOriginPolicy`.
    package var allowedHosts: [String] = []
    /// `Tracing.*`: OpenTelemetry tracing, off unless an endpoint is set here or in OTEL_* variables (README, Tracing).
    package var tracing = TracingSettings()
    /// PEM files of the listeners' certificate chain and key: both set, or neither.
    package var tlsCertFile = ""
    package var tlsKeyFile = ""
    /// PEM CA bundle for `https://` and `grpcs://` branches; empty: the system's trust roots.
    package var branchTLSCAFile = ""
    package var grpcMaxMessageSize = 4 * 1024 * 1024
    /// `GrpcMaxPendingBytesPerConnection`, `GrpcMaxPendingBytes`: bytes of open gRPC calls' messages held before they
    /// are complete, per connection and in all (README, Security).
    package var grpcMaxPendingBytesPerConnection = 8 << 20
    package var grpcMaxPendingBytes = 64 << 20
    /// `MicroService.Driver`: `default` (no discovery) or `dtm-driver-gozero` (go-zero over etcd).
    package var microServiceDriver = "default"
    /// `MicroService.Target`: where to register the coordinator (nil: nowhere). Only with `dtm-driver-gozero`.
    package var microServiceTarget: DiscoveryTarget?
    /// `MicroService.EndPoint`: the `host:port` registered, as clients should dial the gRPC listener.
    package var microServiceEndPoint = ""
    /// A `MicroService.Target` given with the `default` driver, which registers nowhere (as DTM's): said at start-up.
    package var microServiceTargetIgnored = false
    /// `MicroService.EtcdCACertFile`, `EtcdCertFile`, `EtcdCertKeyFile` (go-zero's `discov.EtcdConf` names): TLS to
    /// the etcd cluster of `MicroService.Target` when the CA is set, with a client certificate when the pair is.
    package var etcdTLS = EtcdTLSFiles()
    package struct EtcdTLSFiles: Sendable {
        package var caCertFile = ""
        package var certFile = ""
        package var certKeyFile = ""
    }
    /// Drivers `MicroService.Driver` accepts.
    package static let microServiceDrivers = ["default", "dtm-driver-gozero"]

    /// True when etcd:// and discov:// branch URLs are resolved (go-zero's driver is configured).
    package var resolvesDiscoveryURLs: Bool { microServiceDriver == "dtm-driver-gozero" }
    package var engine = EngineConfig()
    package var http = HTTPServerLimits()
    /// Keys found in the YAML file that swift-dtm does not know (reported at start-up).
    package var ignoredKeys: [String] = []

    package init() {}

    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
    }

    /// Loads from the process environment and an optional YAML file.
    package static func load(file: String?, environment: [String: String] = ProcessEnvironment.current()) throws -> Configuration {
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

    /// The `Tracing.*` keys; the OTEL_* variables that win over them are read by swift-otel itself.
    private static func tracingSettings(_ string: (String) -> String, _ int: (String, ClosedRange<Int64>) throws -> Int64) throws -> TracingSettings {
        var t = TracingSettings()
        t.endpoint = string("Tracing.Endpoint")
        t.tracesEndpoint = string("Tracing.TracesEndpoint")
        t.protocol = string("Tracing.Protocol")
        guard ["http/protobuf", "grpc"].contains(t.protocol) else {
            throw Invalid(description: "Tracing.Protocol: '\(t.protocol.prefix(64))' is not one of http/protobuf, grpc")
        }
        t.headers = string("Tracing.Headers")
        t.serviceName = string("Tracing.ServiceName")
        t.resourceAttributes = string("Tracing.ResourceAttributes")
        t.sampler = string("Tracing.Sampler")
        let samplers = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"]
        guard samplers.contains(t.sampler) else {
            throw Invalid(description: "Tracing.Sampler: '\(t.sampler.prefix(64))' is not one of \(samplers.joined(separator: ", "))")
        }
        t.samplerArg = string("Tracing.SamplerArg")
        t.maxQueueSize = String(try int("Tracing.MaxQueueSize", 1...1_000_000))
        return t
    }

    /// Parses and validates raw values.
    init(values: [String: String]) throws {
        func string(_ key: String) -> String { values[key] ?? "" }
        // Every integer setting has a range; a value outside it stops start-up naming the key and the range.
        func int(_ key: String, _ range: ClosedRange<Int64>) throws -> Int64 {
            let raw = String(string(key).filter { $0 != " " && $0 != "\t" })
            guard let v = Int64(raw) else { throw Invalid(description: "\(key): '\(raw.prefix(64))' is not an integer") }
            guard range.contains(v) else {
                throw Invalid(description: "\(key): \(v) is out of range; it must be between \(range.lowerBound) and \(range.upperBound)")
            }
            return v
        }
        let maxSeconds = engine.limits.maxOptionSeconds
        let day: Int64 = 86_400
        let gib: Int64 = 1 << 30
        storeDriver = string("Store.Driver")
        if storeDriver == "boltdb" {
            storeDriver = "sqlite"
            boltdbAsSQLite = true
        }
        storeFile = string("Store.File")
        httpPort = Int(try int("HttpPort", 0...65535))
        grpcPort = Int(try int("GrpcPort", 0...65535))
        listenHost = string("ListenHost")
        logLevel = string("LogLevel")
        alertWebHook = string("AlertWebHook")
        engine.transCronInterval = Double(try int("TransCronInterval", 1...3600))
        engine.timeoutToFail = try int("TimeoutToFail", 1...maxSeconds)
        engine.retryInterval = try int("RetryInterval", 1...maxSeconds)
        engine.maxRequestTimeout = try int("MaxRequestTimeout", 1...day)
        engine.requestTimeout = try int("RequestTimeout", 1...day)
        engine.roundTimeout = Double(try int("RoundTimeout", 1...day))
        engine.alertRetryLimit = try int("AlertRetryLimit", 0...62)
        engine.cronConcurrency = Int(try int("CronConcurrency", 1...1024))
        engine.limits.maxSteps = Int(try int("MaxSteps", 1...100_000))
        engine.maxRetryInterval = try int("MaxRetryInterval", 0...maxSeconds)
        authToken = string("AuthToken")
        adminToken = string("AdminToken")
        allowedHosts = string("AllowedHosts").split(separator: ",").map { String($0.filter { $0 != " " && $0 != "\t" }) }.filter { !$0.isEmpty }
        for name in allowedHosts where name != "*" {
            let body = name.hasPrefix("*.") ? name.dropFirst(2) : Substring(name)
            guard !body.isEmpty, body.count <= 253, body.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }) else {
                throw Invalid(description: "AllowedHosts: '\(name.prefix(64))' is not a host name (letters, digits, - and .; '*.' prefix or '*' alone)")
            }
        }
        tracing = try Self.tracingSettings(string, int)
        tlsCertFile = string("TLSCertFile")
        tlsKeyFile = string("TLSKeyFile")
        branchTLSCAFile = string("BranchTLSCAFile")
        do {
            engine.branchHostAllowList = try BranchHostAllowList(parsing: string("BranchHostAllowList"))
        } catch {
            throw Invalid(description: error.description)
        }
        microServiceDriver = String(string("MicroService.Driver").filter { $0 != " " && $0 != "\t" })
        microServiceEndPoint = String(string("MicroService.EndPoint").filter { $0 != " " && $0 != "\t" })
        let target = String(string("MicroService.Target").filter { $0 != " " && $0 != "\t" })
        microServiceTargetIgnored = !target.isEmpty && microServiceDriver == "default"
        if !target.isEmpty && microServiceDriver == "dtm-driver-gozero" {
            do {
                microServiceTarget = try DiscoveryTarget.parse(target)
            } catch {
                throw Invalid(description: "MicroService.Target: \(error.description)")
            }
        }
        if microServiceDriver == "dtm-driver-gozero" {
            etcdTLS = EtcdTLSFiles(
                caCertFile: string("MicroService.EtcdCACertFile"), certFile: string("MicroService.EtcdCertFile"),
                certKeyFile: string("MicroService.EtcdCertKeyFile"))
        }
        http.maxBodyBytes = Int(try int("MaxRequestBodySize", 1024...gib))
        grpcMaxMessageSize = Int(try int("GrpcMaxMessageSize", 1024...gib))
        grpcMaxPendingBytesPerConnection = Int(try int("GrpcMaxPendingBytesPerConnection", 1024...(2 * gib)))
        grpcMaxPendingBytes = Int(try int("GrpcMaxPendingBytes", 1024...(64 * gib)))
        http.idleTimeoutSeconds = try int("HttpIdleTimeout", 1...day)
        http.readTimeoutSeconds = try int("HttpReadTimeout", 1...day)
        http.maxConnections = Int(try int("MaxConnections", 1...1_000_000))
        engine.updateBranchSync = try int("UpdateBranchSync", 0...1) != 0
        postgres.host = string("Store.Host")
        postgres.port = Int(try int("Store.Port", 0...65535))
        postgres.user = string("Store.User")
        postgres.password = string("Store.Password")
        postgres.database = string("Store.Db")
        postgres.schema = string("Store.Schema")
        guard let sslMode = PostgresStoreConfiguration.SSLMode(rawValue: string("Store.SSLMode")) else {
            throw Invalid(
                description:
                    "Store.SSLMode: '\(string("Store.SSLMode").prefix(32))' is not one of \(PostgresStoreConfiguration.SSLMode.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        if storeDriver == "postgres" {
            do {
                try postgres.setTLS(mode: sslMode, rootCertFile: string("Store.SSLRootCert"))
            } catch {
                throw Invalid(description: error.description)
            }
        }
        postgres.maxOpenConnections = Int(try int("Store.MaxOpenConns", 0...1_000_000))
        _ = try int("Store.MaxIdleConns", 0...1_000_000)
        let lifetime = try int("Store.ConnMaxLifeTime", 0...525_600)
        postgres.connectionLifetime = lifetime == 0 ? nil : .seconds(lifetime * 60)
        do {
            postgres.tables = try PostgresTables(global: string("Store.TransGlobalTable"), branch: string("Store.TransBranchOpTable"))
        } catch {
            throw Invalid(description: "\(error)")
        }
        mysql.host = postgres.host
        mysql.port = postgres.port
        mysql.user = postgres.user
        mysql.password = postgres.password
        mysql.database = postgres.database
        mysql.maxOpenConnections = postgres.maxOpenConnections
        mysql.connectionLifetime = postgres.connectionLifetime
        if storeDriver == "mysql" {
            do {
                mysql.tables = try MySQLTables(global: string("Store.TransGlobalTable"), branch: string("Store.TransBranchOpTable"))
            } catch {
                throw Invalid(description: "\(error)")
            }
        }
        if string("Store.FinishedDataExpire").isEmpty {
            finishedDataExpire = storeDriver == "sqlite" ? 604_800 : 0
        } else {
            finishedDataExpire = try int("Store.FinishedDataExpire", 0...maxSeconds)
        }
        adminBasePath = string("AdminBasePath")
        while adminBasePath.hasSuffix("/") { adminBasePath.removeLast() }
        let pathCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")
        guard
            adminBasePath.isEmpty
                || (adminBasePath.hasPrefix("/") && adminBasePath.count <= 128 && adminBasePath.allSatisfy { pathCharacters.contains($0) }
                    && !adminBasePath.contains("..") && !adminBasePath.hasPrefix("/api"))
        else {
            throw Invalid(
                description: "AdminBasePath: '\(adminBasePath.prefix(64))' must be empty or a path like /dtm-admin (letters, digits, - _ . /; not under /api)")
        }
        _ = try int("JsonRpcPort", 0...65535)
        _ = try int("ConfigUpdateInterval", 0...maxSeconds)
        try validate()
    }

    func validate() throws {
        guard engine.retryInterval >= 10 else { throw Invalid(description: "RetryInterval should not be less than 10") }
        guard engine.timeoutToFail >= engine.retryInterval else { throw Invalid(description: "TimeoutToFail should not be less than RetryInterval") }
        guard tlsCertFile.isEmpty == tlsKeyFile.isEmpty else {
            throw Invalid(description: "TLSCertFile and TLSKeyFile must be set together (or neither)")
        }
        guard engine.requestTimeout <= engine.maxRequestTimeout else {
            throw Invalid(description: "RequestTimeout (\(engine.requestTimeout)) must not be more than MaxRequestTimeout (\(engine.maxRequestTimeout))")
        }
        // A message of the largest size must fit a connection's budget, and a connection's budget the process's.
        let perConnection = grpcMaxPendingBytesPerConnection
        guard perConnection >= grpcMaxMessageSize + 5 else {
            throw Invalid(
                description: "GrpcMaxPendingBytesPerConnection (\(perConnection)) must be at least GrpcMaxMessageSize + 5 (\(grpcMaxMessageSize + 5))")
        }
        guard grpcMaxPendingBytes >= perConnection else {
            throw Invalid(
                description: "GrpcMaxPendingBytes (\(grpcMaxPendingBytes)) must be at least GrpcMaxPendingBytesPerConnection (\(perConnection))")
        }
        for (key, port) in [("HttpPort", httpPort), ("GrpcPort", grpcPort)] where !(0...65535).contains(port) {
            throw Invalid(description: "\(key): \(port) is not a TCP port")
        }
        guard ["debug", "info", "warn", "error"].contains(logLevel) else {
            throw Invalid(description: "LogLevel: '\(logLevel)' is not one of debug, info, warn, error")
        }
        guard Self.storeDrivers.contains(storeDriver) else {
            throw Invalid(
                description:
                    "Store.Driver: '\(storeDriver.prefix(64))' is not supported; use sqlite (the default; boltdb means it too), "
                    + "postgres or mysql (redis is not)")
        }
        if storeDriver == "sqlite" {
            guard !storeFile.isEmpty else { throw Invalid(description: "Store.File must name the SQLite database file") }
        } else {
            // DTM's messages (spec §12).
            guard !postgres.host.isEmpty else { throw Invalid(description: "Db host not valid ") }
            guard postgres.port > 0 else { throw Invalid(description: "Db port not valid ") }
            guard !postgres.user.isEmpty else { throw Invalid(description: "Db user not valid ") }
            guard !postgres.schema.isEmpty, PostgresTables.isSchemaName(postgres.schema) else {
                throw Invalid(description: "Postgres schema not valid")
            }
            guard postgres.maxOpenConnections >= 2 else {
                throw Invalid(description: "Store.MaxOpenConns: the \(storeDriver) store needs at least 2 connections (one writes, one reads)")
            }
        }
        guard Self.microServiceDrivers.contains(microServiceDriver) else {
            throw Invalid(
                description:
                    "MicroService.Driver: '\(microServiceDriver.prefix(64))' is not supported; use one of: \(Self.microServiceDrivers.joined(separator: ", ")) (consul and nacos are not supported yet)"
            )
        }
        guard etcdTLS.certFile.isEmpty == etcdTLS.certKeyFile.isEmpty else {
            throw Invalid(description: "MicroService.EtcdCertFile and MicroService.EtcdCertKeyFile must be set together (or neither)")
        }
        if !etcdTLS.certFile.isEmpty && etcdTLS.caCertFile.isEmpty {
            throw Invalid(description: "MicroService.EtcdCertFile: a client certificate for etcd needs MicroService.EtcdCACertFile (TLS is on when it is set)")
        }
        if !etcdTLS.caCertFile.isEmpty && microServiceTarget == nil {
            throw Invalid(description: "MicroService.EtcdCACertFile: TLS applies to the etcd cluster of MicroService.Target, which is not set")
        }
        if microServiceTarget != nil {
            guard let (_, port) = try? BranchAddress.parseAuthority(microServiceEndPoint), port != nil else {
                throw Invalid(
                    description:
                        "MicroService.EndPoint: '\(microServiceEndPoint.prefix(64))' must be the host:port clients dial to reach this coordinator's gRPC port")
            }
        }
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
package enum ProcessEnvironment {
    package static func current() -> [String: String] {
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
