@testable import DTMHTTP
import Testing

/// The HTTP route table is the one list of the API's routes: everything else derives from it.
@Suite("HTTP route table")
struct HTTPRouteTableTests {
    @Test("every HTTP route is found by its method and path, and only by them; labels are distinct")
    func httpRoutes() {
        for route in APIRoute.allCases {
            let spec = route.spec
            let path = Substring(spec.isPrefix ? spec.path + "name" : spec.path)
            #expect(APIRoute.route(method: spec.method ?? "GET", path: path) == route, "\(route)")
            if let method = spec.method {
                #expect(APIRoute.route(method: method == "GET" ? "POST" : "GET", path: path) == nil, "\(route)")
            }
            #expect(APIRouter.level(path: path) == spec.access)
            #expect(APIRouter.metricsLabel(path: path) == spec.label)
        }
        #expect(Set(APIRoute.allCases.map(\.spec.label)).count == APIRoute.allCases.count)
        #expect(APIRoute.route(method: "GET", path: "/api/dtmsvr/nothing") == nil)
        #expect(APIRouter.metricsLabel(path: "/api/dtmsvr/nothing") == "other")
        #expect(APIRoute.allCases.filter(\.spec.isAdminAction).map(\.spec.access).allSatisfy { $0 == .admin })
    }
}
