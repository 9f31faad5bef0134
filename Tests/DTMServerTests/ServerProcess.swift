import DTMTestSupport
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The real `dtm-server` binary, started on loopback with a fresh SQLite file in a temporary directory.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: used from one test task at a time.
    private let temporary: TemporaryDirectory
    var directory: URL { temporary.url }
    private(set) var httpPort: Int
    private(set) var grpcPort: Int
    var extraEnvironment: [String: String]
    private var process: Process?
    let logFile: URL

    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["DTM_SERVER_BIN"] { return URL(fileURLWithPath: path) }
        // Tests/DTMServerTests/ServerProcess.swift → repository root
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/dtm-server")
    }

    init(environment: [String: String] = [:]) throws {
        temporary = try TemporaryDirectory(prefix: "swift-dtm-e2e")
        httpPort = try freePort()
        grpcPort = try freePort()
        extraEnvironment = environment
        logFile = temporary.url.appendingPathComponent("server.log")
    }

    var base: String { "http://127.0.0.1:\(httpPort)/api/dtmsvr" }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["HTTP_PORT"] = String(httpPort)
        env["GRPC_PORT"] = String(grpcPort)
        env["LISTEN_HOST"] = "127.0.0.1"
        env["STORE_FILE"] = directory.appendingPathComponent("dtm.sqlite").path
        env["TRANS_CRON_INTERVAL"] = "1"
        for (k, v) in extraEnvironment { env[k] = v }
        return env
    }

    /// Starts the server and waits until it answers ping. If another process took one of its ports in the
    /// meantime, it tries again on fresh ports (only before the first successful start: restarts keep them).
    func start(arguments: [String] = []) async throws {
        for attempt in 1...3 {
            do {
                return try await startOnce(arguments: arguments)
            } catch let failure as TestFailure where failure.description.contains("Address already in use") && attempt < 3 && !started {
                httpPort = try freePort()
                grpcPort = try freePort()
            }
        }
    }

    private var started = false

    private func startOnce(arguments: [String]) async throws {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = arguments
        p.currentDirectoryURL = directory
        p.environment = environment
        if !FileManager.default.fileExists(atPath: logFile.path) { _ = FileManager.default.createFile(atPath: logFile.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: logFile)
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let r = try? await HTTP.get("http://127.0.0.1:\(httpPort)/api/ping"), r.body == #"{"msg":"pong"}"# {
                started = true
                return
            }
            if !p.isRunning { throw TestFailure("dtm-server exited at start:\n\(log())") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("dtm-server did not answer ping:\n\(log())")
    }

    /// `kill -9`: no shutdown, no flush.
    func kill9() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    /// SIGTERM and wait; returns the exit status.
    func terminate() -> Int32 {
        guard let p = process else { return -1 }
        p.terminate()
        p.waitUntilExit()
        process = nil
        return p.terminationStatus
    }

    func log() -> String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    deinit {
        if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func freePort() throws -> Int { try LoopbackPort.free() }

/// Minimal HTTP client calls for the tests.
enum HTTP {
    struct Response {
        var status: Int
        var body: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    }

    static func get(_ url: String) async throws -> Response { try await send(url, method: .GET, body: nil) }

    static func post(_ url: String, _ body: String) async throws -> Response { try await send(url, method: .POST, body: body) }

    static func post(_ url: String, json: [String: Any]) async throws -> Response {
        try await post(url, String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self))
    }

    static func send(_ url: String, method: HTTPMethod, body: String?, headers: [String: String] = [:]) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return Response(status: Int(response.status.code), body: String(buffer: bytes))
    }
}
