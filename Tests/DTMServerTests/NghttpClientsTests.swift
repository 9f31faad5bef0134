import DTMTestSupport
import Foundation
import Testing

/// Debian's nghttp2-client tools (installed by scripts/setup.sh) against the gRPC listener.
@Suite("end to end: nghttp and h2load")
struct NghttpClientsTests {
    static func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestProcess.run("/usr/bin/\(tool)", arguments)
    }

    @Test("h2load sends 2000 NewGid calls over 4 connections: all succeed; nghttp gets grpc-status 0")
    func tools() async throws {
        let server = try ServerProcess()
        try await server.start()
        let body = server.directory.appendingPathComponent("empty.grpc")
        try Data([0, 0, 0, 0, 0]).write(to: body)
        let url = "http://127.0.0.1:\(server.grpcPort)/dtmgimp.Dtm/NewGid"
        let load = try Self.run(
            "h2load", ["-n", "2000", "-c", "4", "-m", "16", "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body.path, url])
        #expect(load.status == 0)
        #expect(load.output.contains("2000 succeeded, 0 failed, 0 errored"), "\(load.output)")
        let one = try Self.run("nghttp", ["-v", "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body.path, url])
        #expect(one.status == 0)
        #expect(one.output.contains("grpc-status: 0"), "\(one.output)")
        let unknown = try Self.run(
            "nghttp",
            ["-v", "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body.path, "http://127.0.0.1:\(server.grpcPort)/dtmgimp.Dtm/Nope"])
        #expect(unknown.output.contains("grpc-status: 12"), "\(unknown.output)")
        let wrongType = try Self.run("nghttp", ["-v", "-H", "content-type: application/json", "-d", body.path, url])
        #expect(!wrongType.output.contains("grpc-status: 0"), "a non-gRPC content-type is not served as gRPC")
        #expect(try await HTTP.get("http://127.0.0.1:\(server.httpPort)/api/ping").status == 200, "still serving")
        _ = server.terminate()
    }
}
