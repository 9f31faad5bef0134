import Foundation
import Testing

@Suite("end to end: API edges, bad input, configuration, lifecycle")
struct EndToEndAPITests {
    @Test("bad input gets 400 naming the problem; nothing is stored; a normal saga still succeeds")
    func badInput() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess(environment: ["MAX_REQUEST_BODY_SIZE": "65536"])
        try await server.start()
        let cases: [(String, String)] = [
            (#"{"gid":"b1","trans_type":"saga""#, "not valid JSON"),
            (#"{"trans_type":"saga","steps":[]}"#, "gid is missing or empty"),
            (#"{"gid":"b2","trans_type":"nosuch","steps":[]}"#, "unknown trans_type 'nosuch'"),
            (#"{"gid":"b3","trans_type":"saga","payloads":[{"a":1}],"steps":[{"action":"x"}]}"#, "payloads[0]: expected a string"),
            (#"{"gid":"b4","trans_type":"saga","wait_result":"yes"}"#, "wait_result: expected true or false"),
            (#"{"gid":"b;5","trans_type":"saga"}"#, "gid contains the character ';'"),
            (#"{"gid":"b6","trans_type":"saga","steps":[{"action":"x"},{"action":"y"}],"payloads":["1"]}"#, "payloads has 1 entries but steps has 2"),
            (#"{"gid":"b7","trans_type":"saga","steps":[{"action":"x"}],"payloads":[""#, "not valid JSON"),
        ]
        for (body, message) in cases {
            let r = try await HTTP.post("\(server.base)/submit", body)
            #expect(r.status == 400, "\(body) → \(r.status) \(r.body)")
            #expect((r.json["message"] as? String)?.contains(message) == true, "\(body) → \(r.body)")
        }
        let oversized = try await HTTP.post(
            "\(server.base)/submit", #"{"gid":"big","trans_type":"saga","payloads":[""# + String(repeating: "x", count: 100_000) + #""]}"#)
        #expect(oversized.status == 400)
        #expect((oversized.json["message"] as? String)?.contains("exceeds the limit of 65536 bytes") == true, "\(oversized.body)")
        let badRegister = try await HTTP.post("\(server.base)/registerBranch", #"{"gid":"x","branch_id":1}"#)
        #expect(badRegister.status == 400)
        let all = try await HTTP.get("\(server.base)/all").json
        #expect((all["transactions"] as? [Any])?.isEmpty == true, "nothing stored")
        let ok = try await HTTP.post("\(server.base)/submit", json: EndToEndSagaTests.quickStart("after-bad", busi: busi, waitResult: true))
        #expect(ok.status == 200)
        _ = server.terminate()
        await busi.stop()
    }

    @Test("query, ping, version, wrong method and unknown path answer as DTM")
    func shapes() async throws {
        let server = try ServerProcess()
        try await server.start()
        let unknown = try await HTTP.get("\(server.base)/query?gid=nope")
        #expect(unknown.status == 200)
        #expect(unknown.body == #"{"transaction":null,"branches":[]}"#)
        let missing = try await HTTP.get("\(server.base)/query")
        #expect(missing.status == 500)
        #expect(missing.json["message"] as? String == "no gid specified")
        #expect(try await HTTP.get("http://127.0.0.1:\(server.httpPort)/api/ping").body == #"{"msg":"pong"}"#)
        #expect(try await HTTP.send("http://127.0.0.1:\(server.httpPort)/api/ping", method: .DELETE, body: nil).status == 200)
        #expect((try await HTTP.get("\(server.base)/version").json["version"] as? String)?.isEmpty == false)
        let wrongMethod = try await HTTP.get("\(server.base)/submit")
        #expect(wrongMethod.status == 404)
        #expect(wrongMethod.body == "404 page not found")
        #expect(try await HTTP.get("\(server.base)/nosuch").status == 404)
        let newGid = try await HTTP.get("\(server.base)/newGid").json
        #expect(newGid["dtm_result"] as? String == "SUCCESS")
        #expect((newGid["gid"] as? String)?.count == 22)
        _ = server.terminate()
    }

    @Test("a bad configuration value stops start-up with a message naming the key")
    func badConfiguration() throws {
        for (env, key) in [("RETRY_INTERVAL", "RetryInterval"), ("HTTP_PORT", "HttpPort"), ("REQUEST_TIMEOUT", "RequestTimeout")] {
            let p = Process()
            p.executableURL = ServerProcess.binary
            var e = ProcessInfo.processInfo.environment
            e[env] = env == "RETRY_INTERVAL" ? "5" : "abc"
            p.environment = e
            let pipe = Pipe()
            p.standardError = pipe
            p.standardOutput = Pipe()
            try p.run()
            p.waitUntilExit()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(p.terminationStatus != 0)
            #expect(text.contains(key), "\(text)")
        }
    }

    @Test("YAML config: DTM keys apply, unknown keys are ignored; -v prints the version")
    func yamlConfig() async throws {
        let server = try ServerProcess()
        let yaml = server.directory.appendingPathComponent("conf.yml")
        try """
        Store:
          Driver: sqlite
          File: from-yaml.sqlite
        RetryInterval: 12
        SomethingUnknown: 1
        MicroService:
          Driver: default
        """.write(to: yaml, atomically: true, encoding: .utf8)
        try await server.start(arguments: ["-c", yaml.path])
        // Environment STORE_FILE is overridden by the YAML file, as in DTM (YAML applies on top of env).
        #expect(FileManager.default.fileExists(atPath: server.directory.appendingPathComponent("from-yaml.sqlite").path))
        #expect(server.log().contains("SomethingUnknown"))
        _ = server.terminate()

        let p = Process()
        p.executableURL = ServerProcess.binary
        p.arguments = ["-v"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        #expect(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("swift-dtm"))
    }

    @Test("SIGTERM shuts down gracefully; -r resets the store")
    func gracefulShutdownAndReset() async throws {
        let busi = try await BranchService.start()
        let server = try ServerProcess()
        try await server.start()
        _ = try await HTTP.post("\(server.base)/submit", json: EndToEndSagaTests.quickStart("keep-1", busi: busi, waitResult: true))
        #expect(server.terminate() == 0)
        #expect(server.log().contains("swift-dtm stopped"))
        try await server.start()
        #expect(try await HTTP.get("\(server.base)/query?gid=keep-1").json["transaction"] is [String: Any])
        _ = server.terminate()
        try await server.start(arguments: ["-r"])
        #expect(try await HTTP.get("\(server.base)/query?gid=keep-1").body == #"{"transaction":null,"branches":[]}"#)
        _ = server.terminate()
        await busi.stop()
    }
}
