@testable import DTMGRPC
@testable import DTMHTTP
import Testing

/// The route tables are the one list of each protocol's routes: everything else derives from them.
@Suite("route tables")
struct RouteTableTests {
    @Test("every HTTP route is found by its method and path, and only by them; labels are distinct")
    func httpRoutes() {
        for route in APIRoute.allCases {
            let spec = route.spec
            let path = Substring(spec.isPrefix ? spec.path + "name" : spec.path)
            #expect(APIRoute.route(method: spec.method ?? "GET", path: path) == route, "\(route)")
            if let method = spec.method {
                #expect(APIRoute.route(method: method == "GET" ? "POST" : "GET", path: path) == nil, "\(route)")
            }
            #expect(APIRouter.level(method: spec.method ?? "GET", path: path) == spec.access)
            #expect(APIRouter.metricsLabel(path: path) == spec.label)
        }
        #expect(Set(APIRoute.allCases.map(\.spec.label)).count == APIRoute.allCases.count)
        #expect(APIRoute.route(method: "GET", path: "/api/dtmsvr/nothing") == nil)
        #expect(APIRouter.metricsLabel(path: "/api/dtmsvr/nothing") == "other")
        #expect(APIRoute.allCases.filter(\.spec.isAdminAction).map(\.spec.access).allSatisfy { $0 == .admin })
    }

    @Test("every gRPC method: its path, token level and label; reflection lists the services of the table")
    func grpcMethods() {
        #expect(DtmService.methods.count == DtmMethod.allCases.count)
        for method in DtmMethod.allCases {
            #expect(DtmMethod(path: method.rawValue) == method)
            #expect(DtmGRPCListener.level(method.rawValue) == method.access)
            #expect(DtmGRPCListener.services.contains(method.service))
        }
        #expect(DtmMethod.healthCheck.access == .open && DtmMethod.deleteTopic.access == .admin && DtmMethod.submit.access == .client)
        #expect(DtmMethod.registerBranch.metricLabel == "registerbranch")
        #expect(DtmGRPCListener.level("/dtmgimp.Dtm/Unknown") == .client)
    }
}
