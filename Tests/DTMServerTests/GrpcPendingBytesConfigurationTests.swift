@testable import DTMServer
import Testing

@Suite("configuration: gRPC pending-bytes budgets")
struct GrpcPendingBytesConfigurationTests {
    private func refusal(_ environment: [String: String]) -> String {
        do {
            _ = try Configuration.load(file: nil, environment: environment)
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test("defaults 8 MiB per connection and 64 MiB in all; environment names; ranges; a largest message must fit")
    func budgets() throws {
        let defaults = try Configuration.load(file: nil, environment: [:])
        #expect(defaults.grpcMaxPendingBytesPerConnection == 8 << 20 && defaults.grpcMaxPendingBytes == 64 << 20)
        let set = try Configuration.load(
            file: nil, environment: ["GRPC_MAX_PENDING_BYTES_PER_CONNECTION": "5242880", "GRPC_MAX_PENDING_BYTES": "16777216"])
        #expect(set.grpcMaxPendingBytesPerConnection == 5 << 20 && set.grpcMaxPendingBytes == 16 << 20)
        #expect(refusal(["GRPC_MAX_PENDING_BYTES": "1023"]).contains("GrpcMaxPendingBytes: 1023 is out of range"))
        #expect(refusal(["GRPC_MAX_PENDING_BYTES_PER_CONNECTION": "-1"]).contains("GrpcMaxPendingBytesPerConnection: -1 is out of range"))
        #expect(
            refusal(["GRPC_MAX_PENDING_BYTES_PER_CONNECTION": "4194304"]).contains(
                "GrpcMaxPendingBytesPerConnection (4194304) must be at least GrpcMaxMessageSize + 5 (4194309)"))
        #expect(
            refusal(["GRPC_MAX_PENDING_BYTES": "4194309", "GRPC_MAX_PENDING_BYTES_PER_CONNECTION": "4194310"]).contains(
                "GrpcMaxPendingBytes (4194309) must be at least GrpcMaxPendingBytesPerConnection (4194310)"))
    }
}
