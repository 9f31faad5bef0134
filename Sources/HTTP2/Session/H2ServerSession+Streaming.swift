/// The streaming mode of the server session, used by server reflection: each request message of a path in
/// `Configuration.streamingPaths` is delivered as it completes (`onStreamMessage`), the owner sends any number of
/// messages back (`sendStreamMessage`) and ends the call with `finishStream` once the client has half-closed
/// (`onStreamHalfClosed`).
extension H2ServerSession {
    /// Sends one message on a streaming call (response HEADERS go out with the first).
    package func sendStreamMessage(streamID: Int32, _ message: [UInt8]) {
        guard let stream = streams[streamID], stream.isStreaming, !stream.responded else { return }
        if stream.responseOffset > 0 {
            stream.responseBody.removeFirst(stream.responseOffset)
            stream.responseOffset = 0
        }
        stream.responseBody.append(contentsOf: GRPCFraming.frame(message))
        if !stream.headersSent {
            submitResponseHeaders(stream, metadata: [])
        } else {
            resumeDeferredBody(stream)
        }
    }

    /// Ends a streaming call with `status` after the messages already sent (trailers-only if none).
    package func finishStream(streamID: Int32, _ status: GRPCStatus) {
        guard let stream = streams[streamID], stream.isStreaming, !stream.responded else { return }
        stream.responded = true
        releaseRequestBytes(stream)
        guard stream.headersSent else {
            submitTrailersOnly(stream, httpStatus: H2Names.status200, status: status, metadata: [])
            return
        }
        stream.trailerStatus = status
        resumeDeferredBody(stream)
    }
}
