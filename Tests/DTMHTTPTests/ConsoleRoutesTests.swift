@testable import DTMHTTP
import Testing

@Suite("console routes")
struct ConsoleRoutesTests {
    @Test("the console at / and /admin/ below AdminBasePath, its files with their types and the security headers; nothing else")
    func routes() throws {
        let root = ConsoleRoutes(basePath: "")
        for path in ["/", "/admin", "/admin/", "/admin/trans/x"] {
            let page = try #require(root.response(path: Substring(path)), "\(path)")
            #expect(page.contentType.hasPrefix("text/html"))
            #expect(page.headers["Content-Security-Policy"]?.contains("script-src 'self'") == true)
        }
        #expect(root.response(path: "/console.js")?.contentType.hasPrefix("text/javascript") == true)
        #expect(root.response(path: "/admin/console.css")?.contentType.hasPrefix("text/css") == true)
        #expect(root.response(path: "/nope.js") == nil)
        #expect(root.response(path: "/admin/nope.js") == nil)
        let based = ConsoleRoutes(basePath: "/ops")
        #expect(based.response(path: "/") == nil)
        #expect(based.response(path: "/ops/admin/")?.contentType.hasPrefix("text/html") == true)
        #expect(based.response(path: "/ops/console.js") != nil)
        #expect(based.response(path: "/opsx/admin/") == nil)
    }

    @Test("routes.js lists every route of the API table with its method and path; console.js names no API path itself")
    func routesScript() throws {
        let script = try #require(ConsoleRoutes(basePath: "/ops").response(path: "/ops/admin/routes.js"))
        #expect(script.contentType.hasPrefix("text/javascript"))
        let text = String(decoding: script.body, as: UTF8.self)
        for route in APIRoute.allCases {
            #expect(text.contains("  \(route): Object.freeze({ method: \"\(route.spec.method ?? "GET")\", path: \"\(route.spec.path)\" }),"))
        }
        let console = try #require(ConsoleAssets.files["console.js"]).text
        #expect(!console.contains("\"/api/") && !console.contains("\"/all") && !console.contains("\"/query"))
        #expect(console.contains("ROUTES.forceStop") && console.contains("ROUTES.deleteTopic"))
    }
}
