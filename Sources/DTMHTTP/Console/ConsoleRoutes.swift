/// The admin console's pages and files (`Console/`, embedded by scripts/gen-console.py), served as DTM serves its UI:
/// at `/` and under `/admin/`, both below `AdminBasePath`. The files hold no data: every route is open, and the
/// console asks for the admin token before the API shows it anything.
struct ConsoleRoutes: Sendable {
    /// `AdminBasePath`: empty, or `/prefix` without a trailing slash.
    let basePath: String

    /// No inline script or style, nothing from elsewhere, not framed.
    static let securityHeaders = [
        "Content-Security-Policy":
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        // The files change with the binary: always revalidated.
        "Cache-Control": "no-cache",
    ]

    /// The answer to a GET of `path`, or nil when the path is not the console's.
    func response(path: Substring) -> APIResponse? {
        var rest = path
        if !basePath.isEmpty {
            guard rest.hasPrefix(basePath) else { return nil }
            rest = rest.dropFirst(basePath.count)
        }
        if rest.isEmpty || rest == "/" || rest == "/admin" { return file("index.html") }
        if rest.hasPrefix("/admin/") { rest = rest.dropFirst("/admin".count) }
        guard rest.hasPrefix("/") else { return nil }
        let name = rest.dropFirst()
        if name == "routes.js" {
            return APIResponse(
                status: 200, contentType: "text/javascript; charset=utf-8", body: Array(Self.routesScript.utf8), headers: Self.securityHeaders)
        }
        if let asset = file(String(name)) { return asset }
        // Any other page under /admin/ is the console's (its links are #fragments; this serves old bookmarks).
        return path.hasPrefix(basePath + "/admin/") && !name.contains(".") ? file("index.html") : nil
    }

    /// `routes.js`: every route of the API's table (`APIRoute`) by its case name, with its method and path, for
    /// console.js, which names no path of its own.
    static let routesScript: String = {
        var lines = ["// Written by the server from its route table (APIRoute).", "export const ROUTES = Object.freeze({"]
        for route in APIRoute.allCases {
            lines.append("  \(route): Object.freeze({ method: \"\(route.spec.method ?? "GET")\", path: \"\(route.spec.path)\" }),")
        }
        lines.append("});")
        return lines.joined(separator: "\n") + "\n"
    }()

    private func file(_ name: String) -> APIResponse? {
        guard let asset = ConsoleAssets.files[name] else { return nil }
        return APIResponse(status: 200, contentType: asset.contentType, body: Array(asset.text.utf8), headers: Self.securityHeaders)
    }
}
