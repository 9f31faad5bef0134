@testable import DTMServer
import DTMTestSupport
import DTMTracing
import Foundation
import Testing

@Suite("configuration")
struct ConfigurationTests {
    private func load(_ environment: [String: String]) throws -> Configuration {
        try Configuration.load(file: nil, environment: environment)
    }

    private func refusal(_ environment: [String: String]) -> String {
        do {
            _ = try load(environment)
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test("defaults load; every integer key is range-checked and the message names the key and the range")
    func ranges() throws {
        let c = try load([:])
        #expect(c.engine.maxRequestTimeout == 60 && c.engine.roundTimeout == 120 && c.http.maxConnections == 4096)
        #expect(refusal(["HTTP_PORT": "70000"]).contains("HttpPort: 70000 is out of range; it must be between 0 and 65535"))
        #expect(refusal(["RETRY_INTERVAL": "99999999999999"]).contains("RetryInterval"))
        #expect(refusal(["TIMEOUT_TO_FAIL": "99999999999999999999"]).contains("TimeoutToFail: '99999999999999999999' is not an integer"))
        #expect(refusal(["CRON_CONCURRENCY": "0"]).contains("CronConcurrency"))
        #expect(refusal(["MAX_CONNECTIONS": "-1"]).contains("MaxConnections"))
        #expect(refusal(["ALERT_RETRY_LIMIT": "63"]).contains("AlertRetryLimit"))
        #expect(refusal(["MAX_RETRY_INTERVAL": "-1"]).contains("MaxRetryInterval"))
        #expect(refusal(["REQUEST_TIMEOUT": "61"]).contains("must not be more than MaxRequestTimeout"))
        #expect(try load(["REQUEST_TIMEOUT": "61", "MAX_REQUEST_TIMEOUT": "120"]).engine.requestTimeout == 61)
        #expect(refusal(["TLS_CERT_FILE": "/x.pem"]).contains("TLSCertFile and TLSKeyFile must be set together"))
        #expect(refusal(["BRANCH_HOST_ALLOW_LIST": "ok.example, user@evil"]).contains("BranchHostAllowList entry 'user@evil'"))
        #expect(refusal(["TLS_CERT_FILE": "/nonexistent.pem", "TLS_KEY_FILE": "/nonexistent.key"]) == "")  // files are read at start-up
    }

    @Test("Store: sqlite or postgres with DTM's keys and messages; retention defaults per store; table names checked")
    func store() throws {
        #expect(refusal(["STORE_DRIVER": "redis"]).contains("Store.Driver: 'redis' is not supported"))
        // DTM's default written out: the embedded store, with one notice at start-up.
        let bolt = try load(["STORE_DRIVER": "boltdb"])
        #expect(bolt.storeDriver == "sqlite" && bolt.boltdbAsSQLite && bolt.finishedDataExpire == 604_800)
        #expect(try load([:]).boltdbAsSQLite == false)
        let pg = ["STORE_DRIVER": "postgres", "STORE_HOST": "127.0.0.1", "STORE_PORT": "5432", "STORE_USER": "dtm"]
        let c = try load(pg.merging(["STORE_SCHEMA": "dtm", "STORE_MAX_OPEN_CONNS": "3", "STORE_CONN_MAX_LIFE_TIME": "0"]) { $1 })
        #expect(c.postgres.host == "127.0.0.1" && c.postgres.port == 5432 && c.postgres.user == "dtm" && c.postgres.database == "dtm")
        #expect(c.postgres.schema == "dtm" && c.postgres.maxOpenConnections == 3 && c.postgres.connectionLifetime == nil)
        #expect(try load(pg).postgres.connectionLifetime == .seconds(300), "ConnMaxLifeTime is in minutes")
        // DTM's messages, trailing space included.
        #expect(refusal(pg.merging(["STORE_HOST": ""]) { $1 }) == "Db host not valid ")
        #expect(refusal(pg.merging(["STORE_PORT": "0"]) { $1 }) == "Db port not valid ")
        #expect(refusal(pg.merging(["STORE_USER": ""]) { $1 }) == "Db user not valid ")
        #expect(refusal(pg.merging(["STORE_SCHEMA": "a;drop"]) { $1 }) == "Postgres schema not valid")
        #expect(refusal(pg.merging(["STORE_MAX_OPEN_CONNS": "1"]) { $1 }).contains("at least 2 connections"))
        #expect(refusal(pg.merging(["STORE_TRANS_GLOBAL_TABLE": "x; DROP TABLE kv"]) { $1 }).contains("Store.TransGlobalTable"))
        #expect(try load(pg.merging(["STORE_TRANS_GLOBAL_TABLE": "dtm.trans_global"]) { $1 }).postgres.tables.kv == "dtm.kv")
        // Retention: as DTM's store of the same kind unless set.
        #expect(try load([:]).finishedDataExpire == 604_800)
        #expect(try load(pg).finishedDataExpire == 0)
        #expect(try load(pg.merging(["STORE_FINISHED_DATA_EXPIRE": "3600"]) { $1 }).finishedDataExpire == 3600)
        #expect(try load(["STORE_FINISHED_DATA_EXPIRE": "0"]).finishedDataExpire == 0)
        #expect(refusal(["STORE_FINISHED_DATA_EXPIRE": "-5"]).contains("Store.FinishedDataExpire"))
    }

    @Test("AdminBasePath: a plain path prefix, trailing slash dropped; nothing under /api, no dot segments")
    func adminBasePath() throws {
        #expect(try load(["ADMIN_BASE_PATH": "/dtm-admin/"]).adminBasePath == "/dtm-admin")
        #expect(try load([:]).adminBasePath == "")
        for bad in ["dtm", "/api/ui", "/a/../b", "/a b", "/a?x=1", "/<script>"] {
            #expect(refusal(["ADMIN_BASE_PATH": bad]).contains("AdminBasePath"), "\(bad)")
        }
    }

    @Test("MicroService: only dtm-driver-gozero and default; a Target is parsed and needs a host:port EndPoint")
    func microService() throws {
        #expect(refusal(["MICRO_SERVICE_DRIVER": "dtm-driver-kratos"]).contains("dtm-driver-gozero"))
        let gozero = ["MICRO_SERVICE_DRIVER": "dtm-driver-gozero", "MICRO_SERVICE_END_POINT": "127.0.0.1:36790"]
        let c = try load(gozero.merging(["MICRO_SERVICE_TARGET": "etcd://127.0.0.1:2379,127.0.0.1:2380/dtmservice?user=u&password=p"]) { $1 })
        #expect(c.microServiceTarget?.hosts == ["127.0.0.1:2379", "127.0.0.1:2380"])
        #expect(c.microServiceTarget?.key == "dtmservice")
        #expect(c.microServiceTarget?.user == "u")
        #expect(c.resolvesDiscoveryURLs)
        #expect(try load(gozero).microServiceTarget == nil)  // no Target: resolution only, no registration
        #expect(refusal(gozero.merging(["MICRO_SERVICE_TARGET": "consul://127.0.0.1:8500/dtmservice"]) { $1 }).contains("MicroService.Target"))
        #expect(
            refusal(gozero.merging(["MICRO_SERVICE_TARGET": "etcd://127.0.0.1:2379/dtmservice", "MICRO_SERVICE_END_POINT": "127.0.0.1"]) { $1 })
                .contains("MicroService.EndPoint"))
        #expect(
            refusal(["MICRO_SERVICE_DRIVER": "dtm-driver-gozero", "MICRO_SERVICE_TARGET": "etcd://127.0.0.1:2379/dtmservice"]).contains("MicroService.EndPoint")
        )
        let plain = try load(["MICRO_SERVICE_TARGET": "etcd://127.0.0.1:2379/dtmservice"])
        #expect(plain.microServiceTargetIgnored && !plain.resolvesDiscoveryURLs && plain.microServiceTarget == nil)
    }

    @Test("environment variable names: DTM's rule, acronyms end before the next word")
    func environmentNames() {
        #expect(ConfigurationKeys.environmentName("Store.MaxOpenConns") == "STORE_MAX_OPEN_CONNS")
        #expect(ConfigurationKeys.environmentName("MicroService.EndPoint") == "MICRO_SERVICE_END_POINT")
        #expect(ConfigurationKeys.environmentName("TLSCertFile") == "TLS_CERT_FILE")
        #expect(ConfigurationKeys.environmentName("TLSKeyFile") == "TLS_KEY_FILE")
        #expect(ConfigurationKeys.environmentName("BranchTLSCAFile") == "BRANCH_TLS_CA_FILE")
        #expect(ConfigurationKeys.environmentName("HttpPort") == "HTTP_PORT")
        #expect(ConfigurationKeys.environmentName("UpdateBranchAsyncGoroutineNum") == "UPDATE_BRANCH_ASYNC_GOROUTINE_NUM")
    }

    @Test("TLS files that cannot be read stop start-up naming the key")
    func tlsFiles() {
        var c = Configuration()
        c.tlsCertFile = "/nonexistent/cert.pem"
        c.tlsKeyFile = "/nonexistent/key.pem"
        #expect(throws: Configuration.Invalid.self) { try TLSSetup(c) }
        do {
            _ = try TLSSetup(c)
        } catch {
            #expect("\(error)".hasPrefix("TLSCertFile:"))
        }
        var branch = Configuration()
        branch.branchTLSCAFile = "/nonexistent/ca.pem"
        #expect(throws: Configuration.Invalid.self) { try TLSSetup(branch) }
    }

    @Test("Tracing: conf.yml's keys stand for OTEL_* variables (which win); protocol, sampler and queue size are checked")
    func tracing() throws {
        let directory = try TemporaryDirectory(prefix: "conf-tracing")
        let file = directory.file("conf.yml")
        try """
        Tracing:
          Endpoint: http://127.0.0.1:4318
          Protocol: grpc
          ServiceName: dtm-eu
          MaxQueueSize: 64
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let c = try Configuration.load(file: file, environment: [:])
        #expect(c.tracing.endpoint == "http://127.0.0.1:4318" && c.tracing.protocol == "grpc" && c.tracing.serviceName == "dtm-eu")
        let env = c.tracing.environment(process: ["OTEL_SERVICE_NAME": "from-env"])
        #expect(env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318" && env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc")
        #expect(env["OTEL_BSP_MAX_QUEUE_SIZE"] == "64" && env["OTEL_SERVICE_NAME"] == "from-env")
        #expect(TracingSettings.isEnabled(environment: env, process: [:]))
        #expect(!TracingSettings.isEnabled(environment: try load([:]).tracing.environment(process: [:]), process: [:]), "off by default")
        #expect(refusal(["TRACING_PROTOCOL": "http/json"]).contains("Tracing.Protocol: 'http/json' is not one of http/protobuf, grpc"))
        #expect(refusal(["TRACING_SAMPLER": "sometimes"]).contains("Tracing.Sampler: 'sometimes' is not one of"))
        #expect(refusal(["TRACING_MAX_QUEUE_SIZE": "0"]).contains("Tracing.MaxQueueSize"))
    }
}
