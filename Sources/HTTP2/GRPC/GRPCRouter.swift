/// Maps full method paths (`/package.Service/Method`) to handlers; anything else is answered
/// UNIMPLEMENTED, as gRPC servers do. Build it once, then pass `router.handle` to `GRPCServer`.
/// A dictionary lookup on the path String is the only per-request routing cost.
package struct GRPCRouter: Sendable {
    private var routes: [String: GRPCServer.Handler] = [:]

    package init() {}

    /// Registers `handler` for `path`; a second registration of the same path replaces the first.
    package mutating func register(_ path: String, _ handler: @escaping GRPCServer.Handler) {
        precondition(path.hasPrefix("/") && path.dropFirst().contains("/"), "gRPC paths look like /package.Service/Method: \(path)")
        routes[path] = handler
    }

    /// The registered paths, sorted (for logs and tests).
    package var paths: [String] { routes.keys.sorted() }

    package func handle(_ request: GRPCRequest) async -> GRPCResponse {
        guard let handler = routes[request.path] else { return .unimplemented(path: request.path) }
        return await handler(request)
    }
}
