internal import CNghttp2
import Logging
import NIOCore

/// Answers of the server session: unary responses (HEADERS, DATA, trailers), trailers-only errors and refusals, the
/// response body nghttp2 reads, and what happens when nghttp2 refuses a submission.
extension H2ServerSession {
    /// Answers a request. OK responses are HEADERS, DATA (prefixed message), trailers; errors are a
    /// single trailers-only HEADERS frame. Answers for streams that are gone are dropped.
    package func respond(streamID: Int32, _ response: GRPCResponse) {
        guard let stream = streams[streamID], !stream.responded else { return }
        stream.responded = true
        releaseRequestBytes(stream)
        if response.status.code != .ok {
            submitTrailersOnly(stream, httpStatus: H2Names.status200, status: response.status, metadata: response.metadata)
            return
        }
        stream.responseBody = GRPCFraming.frame(response.message)
        stream.trailerStatus = response.status
        submitResponseHeaders(stream, metadata: response.metadata)
    }

    /// True when `rv` is 0; otherwise logs the failed nghttp2 call.
    func succeeded(_ rv: Int32, _ operation: String, stream: Int32? = nil) -> Bool {
        guard rv != 0 else { return true }
        var metadata: Logger.Metadata = ["operation": "\(operation)", "error": "\(String(cString: nghttp2_strerror(rv)))"]
        if let stream { metadata["stream"] = "\(stream)" }
        logger.warning("nghttp2 call failed", metadata: metadata)
        return false
    }

    /// A stream whose answer could not be submitted is reset with INTERNAL_ERROR, so the client learns at once
    /// instead of waiting for its deadline.
    func resetAfterFailedResponse(_ rv: Int32, stream: ServerStream, _ operation: String) {
        guard !succeeded(rv, operation, stream: stream.id) else { return }
        _ = succeeded(submitRstStream(stream.id, NGHTTP2_INTERNAL_ERROR), "nghttp2_submit_rst_stream", stream: stream.id)
    }

    func readResponseBody(
        streamID: Int32, into buf: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = streams[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let n = min(length, stream.responseBody.count - stream.responseOffset)
        if n > 0 {
            stream.responseBody.withUnsafeBufferPointer {
                buf.update(from: $0.baseAddress! + stream.responseOffset, count: n)  // n > 0: not empty
            }
            stream.responseOffset += n
        }
        if stream.responseOffset == stream.responseBody.count {
            stream.responseBody = []
            stream.responseOffset = 0
            if stream.isStreaming, !stream.responded {
                // More messages may follow: park the stream until sendStreamMessage/finishStream.
                if n > 0 { return n }
                stream.bodyDeferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
            flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
            let status = stream.trailerStatus ?? .ok
            var trailers = [H2Header(name: H2Names.grpcStatus, value: String(status.code.rawValue))]
            if !status.message.isEmpty {
                trailers.append(H2Header(name: H2Names.grpcMessage, value: GRPCMessageEncoding.encode(status.message)))
            }
            // Without trailers the stream ends with this DATA frame: the client sees a call without a status.
            let rv = submitTrailer(streamID, trailers)
            if succeeded(rv, "nghttp2_submit_trailer", stream: streamID) { flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue) }
        }
        return n
    }

    /// Response HEADERS (:status 200, gRPC content-type, `metadata`) with the stream's body
    /// (`responseBody`, then trailers) as the data source.
    func submitResponseHeaders(_ stream: ServerStream, metadata: [(String, String)]) {
        stream.headersSent = true
        var headers = [
            H2Header(name: H2Names.status, value: H2Names.status200),
            H2Header(name: H2Names.contentType, value: H2Names.applicationGRPC),
        ]
        for (name, value) in metadata { headers.append(H2Header(name.lowercased(), value)) }
        let rv = submitResponse(stream.id, headers, body: true)
        resetAfterFailedResponse(rv, stream: stream, "nghttp2_submit_response")
    }

    func resumeDeferredBody(_ stream: ServerStream) {
        guard stream.bodyDeferred else { return }
        stream.bodyDeferred = false
        _ = succeeded(resumeData(stream.id), "nghttp2_session_resume_data", stream: stream.id)
    }

    func reject(_ stream: ServerStream, httpStatus: String, _ status: GRPCStatus) {
        guard !stream.responded else { return }
        stream.responded = true
        releaseRequestBytes(stream)
        logger.debug("rejecting gRPC stream", metadata: ["stream": "\(stream.id)", "status": "\(status)"])
        submitTrailersOnly(stream, httpStatus: Array(httpStatus.utf8), status: status, metadata: [])
    }

    func submitTrailersOnly(_ stream: ServerStream, httpStatus: [UInt8], status: GRPCStatus, metadata: [(String, String)]) {
        var headers = [
            H2Header(name: H2Names.status, value: httpStatus),
            H2Header(name: H2Names.contentType, value: H2Names.applicationGRPC),
            H2Header(name: H2Names.grpcStatus, value: String(status.code.rawValue)),
        ]
        if !status.message.isEmpty {
            headers.append(H2Header(name: H2Names.grpcMessage, value: GRPCMessageEncoding.encode(status.message)))
        }
        for (name, value) in metadata { headers.append(H2Header(name.lowercased(), value)) }
        let rv = submitResponse(stream.id, headers, body: false)
        resetAfterFailedResponse(rv, stream: stream, "nghttp2_submit_response (trailers-only)")
    }
}
