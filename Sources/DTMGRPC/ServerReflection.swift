package import HTTP2
import ProtoCSupport

/// gRPC server reflection, so `grpcurl list` / `describe` work against the coordinator as against DTM
/// (which registers grpc-go's v1alpha service; we also answer v1, which newer clients try first).
/// Answers come from the descriptors of the served .proto files, embedded at generation time; every
/// request message gets one response message, so the handler is synchronous.
package struct ServerReflection: Sendable {
    /// The bidirectional-stream method of both versions.
    package static let paths = [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]

    /// gRPC's NOT_FOUND, the code grpc-go puts in an `ErrorResponse` for an unknown file or symbol.
    private static let notFound: Int32 = 5

    private let services: [String]
    private let files: [String: ProtoCodec.ServedFile]
    private let fileBySymbol: [String: String]

    /// `services`: fully-qualified names `list_services` reports, e.g. `dtmgimp.Dtm`.
    package init(services: [String]) {
        self.services = services
        let served = ProtoCodec.servedFiles()
        files = Dictionary(served.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var bySymbol: [String: String] = [:]
        for file in served { for symbol in file.symbols { bySymbol[symbol] = file.name } }
        fileBySymbol = bySymbol
    }

    /// One request message in, one response message out; malformed input ends the call INVALID_ARGUMENT.
    package func answer(_ request: GRPCRequest) -> GRPCResponse {
        do throws(ProtoPackError) {
            return try answer(request.message)
        } catch {
            return .error(.internal, error.description)
        }
    }

    private func answer(_ message: [UInt8]) throws(ProtoPackError) -> GRPCResponse {
        let reply = try ProtoCodec.answerReflection(message) { query in
            switch query {
            case .listServices:
                return .services(services)
            case .fileByFilename(let name):
                guard files[name] != nil else { return .error(code: Self.notFound, message: "file not found: \(name.prefix(200))") }
                return .files(withDependencies(name))
            case .fileContainingSymbol(let symbol):
                guard let name = fileBySymbol[symbol] else {
                    return .error(code: Self.notFound, message: "symbol not found: \(symbol.prefix(200))")
                }
                return .files(withDependencies(name))
            case .fileContainingExtension(let type, let number):
                return .error(code: Self.notFound, message: "extension not found: \(type.prefix(200)) \(number)")
            case .allExtensionNumbersOfType(let type):
                guard fileBySymbol[type] != nil else { return .error(code: Self.notFound, message: "type not found: \(type.prefix(200))") }
                return .extensionNumbers(baseType: type)
            }
        }
        guard let reply else {
            return .error(.invalidArgument, "the request is not a ServerReflectionRequest naming a query")
        }
        return .ok(reply)
    }

    /// The file first, then everything it imports, transitively, each once.
    private func withDependencies(_ name: String) -> [[UInt8]] {
        var seen: Set<String> = []
        var order: [String] = []
        var pending = [name]
        while let next = pending.popLast() {
            guard seen.insert(next).inserted, let file = files[next] else { continue }
            order.append(next)
            pending.append(contentsOf: file.dependencies.reversed())
        }
        return order.compactMap { files[$0]?.descriptor }
    }
}
