import Logging
import Foundation
import Testing
@testable import HTTP2

/// A real grpcio client against `GRPCServer`, and our pool against a real grpcio server.
/// Runs when a Python with grpcio is found: `$INTEROP_PYTHON`, else `<repo>/.venv/bin/python`.
@Suite("interop with Python grpcio", .enabled(if: InteropPeer.python != nil))
struct GRPCInteropTests {
    @Test("grpcio client: metadata, 3 MiB, error details, UNIMPLEMENTED, deadline, 100 concurrent")
    func grpcioClient() async throws {
        let server = try await GRPCLoopbackTests.echoServer()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: InteropPeer.python!)
        process.arguments = [InteropPeer.script, "client", String(server.port)]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let output = try await Task.detached { try out.fileHandleForReading.readToEnd() ?? Data() }.value
        process.waitUntilExit()
        #expect(String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "OK")
        #expect(process.terminationStatus == 0)
        await server.shutdown()
    }

    @Test("GRPCConnectionPool against a grpcio server")
    func grpcioServer() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: InteropPeer.python!)
        process.arguments = [InteropPeer.script, "server"]
        let out = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardInput = input
        try process.run()
        defer {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
        let portLine = try await Task.detached { () -> String in
            var line = Data()
            while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data([0x0A]) { line += byte }
            return String(decoding: line, as: UTF8.self)
        }.value
        let port = try #require(Int(portLine), "grpc_peer.py server printed '\(portLine)'")
        let pool = GRPCConnectionPool(logger: Logger(label: "test"))
        let authority = "127.0.0.1:\(port)"

        let echoed = await pool.unary(authority: authority, path: "/test.Echo/Echo", metadata: [("dtm-gid", "g7")], message: [1, 2, 3], timeout: .seconds(5))
        #expect(echoed.isOK)
        #expect(echoed.message == [1, 2, 3])
        #expect(echoed.metadata.contains { $0 == ("x-gid", "g7") })
        let empty = await pool.unary(authority: authority, path: "/test.Echo/Echo", message: [], timeout: .seconds(5))
        #expect(empty.isOK && empty.message.isEmpty)
        let big = bytes(3 * 1024 * 1024)
        #expect(await pool.unary(authority: authority, path: "/test.Echo/Echo", message: big, timeout: .seconds(20)).message == big)
        let failed = await pool.unary(authority: authority, path: "/test.Echo/Fail", message: [], timeout: .seconds(5))
        #expect(failed.status == GRPCStatus(.aborted, "FAILURE: ü 100%"))
        let unknown = await pool.unary(authority: authority, path: "/test.Echo/Nope", message: [], timeout: .seconds(5))
        #expect(unknown.status.code == .unimplemented)
        await pool.shutdown()
    }
}

/// Where the Python peer lives and which interpreter runs it.
enum InteropPeer {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repoRoot.appendingPathComponent("Tests/Interop/grpc_peer.py").path

    static let python: String? = {
        let candidate = ProcessInfo.processInfo.environment["INTEROP_PYTHON"] ?? repoRoot.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else { return nil }
        let check = Process()
        check.executableURL = URL(fileURLWithPath: candidate)
        check.arguments = ["-c", "import grpc"]
        check.standardOutput = FileHandle.nullDevice
        check.standardError = FileHandle.nullDevice
        guard (try? check.run()) != nil else { return nil }
        check.waitUntilExit()
        return check.terminationStatus == 0 ? candidate : nil
    }()
}
