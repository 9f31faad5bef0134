/// Every configuration key swift-dtm reads, with its default: DTM's keys and defaults (spec §12) plus a few of
/// our own (marked). A key's environment variable is derived from its path as DTM does it: `Store.Driver` →
/// `STORE_DRIVER`, `MicroService.EndPoint` → `MICRO_SERVICE_END_POINT`.
enum ConfigurationKeys {
    static let all: [(key: String, defaultValue: String)] = [
        ("Store.Driver", "sqlite"),
        ("Store.File", "dtm.sqlite"),  // ours: the SQLite database file
        ("Store.Host", ""),
        ("Store.Port", "0"),
        ("Store.User", ""),
        ("Store.Password", ""),
        ("Store.Db", "dtm"),
        ("Store.Schema", "public"),
        ("Store.SSLMode", "disable"),  // libpq's sslmode names (DTM's DSN has sslmode=disable)
        ("Store.SSLRootCert", ""),  // PEM CA bundle for verify-ca / verify-full (empty: the system's roots)
        ("Store.MaxOpenConns", "500"),
        ("Store.MaxIdleConns", "500"),
        ("Store.ConnMaxLifeTime", "5"),
        ("Store.DataExpire", "604800"),
        // Empty: the store's own default (SQLite 604800 as DTM's embedded BoltDB keeps finished data; PostgreSQL 0,
        // kept for ever, as DTM's SQL stores).
        ("Store.FinishedDataExpire", ""),
        ("Store.RedisPrefix", "{a}"),
        ("Store.TransGlobalTable", "trans_global"),
        ("Store.TransBranchOpTable", "trans_branch_op"),
        ("TransCronInterval", "3"),
        ("TimeoutToFail", "35"),
        ("RetryInterval", "10"),
        ("RequestTimeout", "3"),
        ("HttpPort", "36789"),
        ("GrpcPort", "36790"),
        ("JsonRpcPort", "36791"),
        ("MicroService.Driver", "default"),
        ("MicroService.Target", ""),
        ("MicroService.EndPoint", ""),
        ("MicroService.EtcdCACertFile", ""),  // go-zero's EtcdConf.CACertFile: PEM CA of the Target's etcd; set = TLS
        ("MicroService.EtcdCertFile", ""),  // go-zero's EtcdConf.CertFile: PEM client certificate for etcd
        ("MicroService.EtcdCertKeyFile", ""),  // go-zero's EtcdConf.CertKeyFile: its private key
        ("UpdateBranchSync", "1"),
        ("UpdateBranchAsyncGoroutineNum", "1"),
        ("LogLevel", "info"),
        ("Log.Outputs", "stderr"),
        ("Log.RotationEnable", "0"),
        ("Log.RotationConfigJSON", "{}"),
        ("TimeZoneOffset", ""),
        ("ConfigUpdateInterval", "3"),
        ("AlertRetryLimit", "3"),
        ("AlertWebHook", ""),
        ("AdminBasePath", ""),
        ("GrpcServiceConfig", #"{"loadBalancingConfig": [{"round_robin":{}}]}"#),
        ("ListenHost", "0.0.0.0"),  // ours: address both listeners bind
        ("MaxRequestBodySize", "4194304"),  // ours: bytes
        ("GrpcMaxMessageSize", "4194304"),  // ours: largest gRPC message, bytes (gRPC's usual 4 MiB)
        ("GrpcMaxPendingBytesPerConnection", "8388608"),  // ours: bytes of open gRPC calls held per connection
        ("GrpcMaxPendingBytes", "67108864"),  // ours: the same for the whole process
        ("HttpIdleTimeout", "60"),  // ours: seconds
        ("HttpReadTimeout", "30"),  // ours: seconds from a request's first byte to its last
        ("CronConcurrency", "16"),  // ours: transactions processed at once by the cron loop
        ("MaxSteps", "1000"),  // ours: steps per saga/msg
        ("MaxRetryInterval", "3600"),  // ours: cap of the back-off interval, seconds (0 = none)
        ("AuthToken", ""),  // ours: bearer token required on every API when set
        ("TLSCertFile", ""),  // ours: PEM certificate chain; with TLSKeyFile both listeners speak TLS
        ("TLSKeyFile", ""),  // ours: PEM private key of TLSCertFile
        ("BranchTLSCAFile", ""),  // ours: PEM CA bundle that https:// and grpcs:// branches must chain to (empty: the system's)
        ("MaxConnections", "4096"),  // ours: connections each listener keeps open at once
        ("AdminToken", ""),  // ours: bearer token of the admin APIs (forceStop, all, topics, …); empty = AuthToken
        ("MaxRequestTimeout", "60"),  // ours: longest branch call timeout a transaction may ask for, seconds
        ("RoundTimeout", "120"),  // ours: longest a cron-claimed round may run before it is cut and backed off, seconds
        ("BranchHostAllowList", ""),  // ours: comma-separated hosts branch URLs may name (empty = any)
        ("AllowedHosts", ""),  // ours: comma-separated names the HTTP API may be reached by (Host), besides IP literals and localhost
        // ours: OpenTelemetry tracing (README, Tracing); each stands for the OTEL_* variable named, which wins when set.
        ("Tracing.Endpoint", ""),  // OTEL_EXPORTER_OTLP_ENDPOINT; set = tracing on
        ("Tracing.TracesEndpoint", ""),  // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; set = tracing on
        ("Tracing.Protocol", "http/protobuf"),  // OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf or grpc
        ("Tracing.Headers", ""),  // OTEL_EXPORTER_OTLP_HEADERS: k=v,k2=v2
        ("Tracing.ServiceName", "dtm"),  // OTEL_SERVICE_NAME
        ("Tracing.ResourceAttributes", ""),  // OTEL_RESOURCE_ATTRIBUTES: k=v,k2=v2
        ("Tracing.Sampler", "parentbased_always_on"),  // OTEL_TRACES_SAMPLER
        ("Tracing.SamplerArg", ""),  // OTEL_TRACES_SAMPLER_ARG
        ("Tracing.MaxQueueSize", "2048"),  // OTEL_BSP_MAX_QUEUE_SIZE: spans waiting for export; more are dropped and counted
    ]

    /// Where two acronyms meet, the derived name would run them together (`BRANCH_TLSCA_FILE`).
    static let explicitEnvironmentNames = ["BranchTLSCAFile": "BRANCH_TLS_CA_FILE"]

    /// `Store.MaxOpenConns` → `STORE_MAX_OPEN_CONNS`; an acronym ends before the capital that starts the next word:
    /// `TLSCertFile` → `TLS_CERT_FILE`.
    static func environmentName(_ key: String) -> String {
        if let name = explicitEnvironmentNames[key] { return name }
        var out = ""
        for part in key.split(separator: ".") {
            if !out.isEmpty { out += "_" }
            let chars = Array(part)
            for (i, c) in chars.enumerated() {
                if c.isUppercase, i > 0 {
                    let p = chars[i - 1]
                    let nextIsLower = i + 1 < chars.count && chars[i + 1].isLowercase
                    if p.isLowercase || p.isNumber || (p.isUppercase && nextIsLower) { out += "_" }
                }
                out += c.uppercased()
            }
        }
        return out
    }
}
