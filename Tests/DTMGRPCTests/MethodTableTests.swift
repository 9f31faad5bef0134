@testable import DTMGRPC
import Testing

/// The gRPC method table is the one list of the listener's methods: everything else derives from it.
@Suite("gRPC method table")
struct GRPCMethodTableTests {
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
