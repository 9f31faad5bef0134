/// What gRPC requires of a request's HEADERS, checked before any of its body is read: the refusal (with the HTTP
/// status grpc-go answers it with) or nil. The owner's `authorize` is asked only about requests that pass.
enum GRPCRequestValidation {
    static func refusal(of stream: ServerStream) -> (httpStatus: String, status: GRPCStatus)? {
        guard let contentType = stream.contentType, isGRPCContentType(contentType) else {
            // grpc-go answers a non-gRPC content-type with HTTP 415 carrying grpc-status INTERNAL.
            return ("415", GRPCStatus(.internal, "invalid gRPC request content-type \"\(stream.contentType ?? "")\""))
        }
        if !stream.isPost { return ("405", GRPCStatus(.internal, "invalid gRPC request method (gRPC requires POST)")) }
        guard stream.path != nil else { return ("200", GRPCStatus(.unimplemented, "missing :path")) }
        return nil
    }
}
