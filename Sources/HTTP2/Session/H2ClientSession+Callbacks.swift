internal import CNghttp2

/// The nghttp2 callbacks of a client session that need only the calls' Swift state (the ones that also touch the
/// session itself stay with it), and the delivery of finished calls.
extension H2ClientSession {
    func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>, name: UnsafePointer<UInt8>?, namelen: Int,
        value: UnsafePointer<UInt8>?, valuelen: Int
    ) -> Int32 {
        guard let call = calls[frame.pointee.hd.stream_id] else { return 0 }
        let nameBytes = UnsafeBufferPointer(start: name, count: namelen)
        let value = String(h2Bytes: value, count: valuelen)
        if nameBytes.elementsEqual(H2Names.status) {
            call.httpStatus = Int(value)
        } else if nameBytes.elementsEqual(H2Names.grpcStatus) {
            call.grpcStatus = Int(value).map(GRPCStatusCode.init(rawValue:)) ?? .unknown
        } else if nameBytes.elementsEqual(H2Names.grpcMessage) {
            call.grpcMessage = GRPCMessageEncoding.decode(value)
        } else if nameBytes.first != UInt8(ascii: ":") {
            call.metadata.append((String(h2Bytes: name, count: namelen), value))
        }
        return 0
    }

    func onFrameRecv(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        if frame.pointee.hd.type == UInt8(NGHTTP2_PING.rawValue), frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 {
            pingsAcked = min(pingsAcked + 1, pingsSent)
        }
        if frame.pointee.hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) {
            // Streams above last_stream_id are closed by nghttp2 with REFUSED_STREAM right after
            // this callback (see onStreamClose); new calls go to a fresh connection.
            goawayLastStreamID = frame.pointee.goaway.last_stream_id
            logger.debug(
                "GOAWAY received",
                metadata: [
                    "authority": "\(authority)", "last_stream_id": "\(frame.pointee.goaway.last_stream_id)",
                    "error_code": "\(frame.pointee.goaway.error_code)",
                ])
        }
        return 0
    }

    func onFrameSend(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue), let call = calls[frame.pointee.hd.stream_id] {
            call.headersSent = true
        }
        return 0
    }

    func onFrameNotSend(_ frame: UnsafePointer<nghttp2_frame>, _ libError: Int32) -> Int32 {
        // A request HEADERS that never left (GOAWAY arrived, stream limit): the server never saw it.
        guard frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
            let call = calls.removeValue(forKey: frame.pointee.hd.stream_id)
        else { return 0 }
        finished.append(
            (
                call.completion,
                GRPCCallResult(
                    status: GRPCStatus(.unavailable, "request not sent: \(String(cString: nghttp2_strerror(libError)))"),
                    isTransparentlyRetryable: true)
            ))
        return 0
    }

    func onStreamClose(_ streamID: Int32, errorCode: UInt32) -> Int32 {
        guard let call = calls.removeValue(forKey: streamID) else { return 0 }
        releaseUnhandedBytes(of: call, streamID: streamID)
        finished.append((call.completion, call.result(errorCode: errorCode)))
        return 0
    }

    func readRequestBody(
        streamID: Int32, into buf: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let call = calls[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let n = min(length, call.body.count - call.bodyOffset)
        if n > 0 {
            call.body.withUnsafeBufferPointer { buf.update(from: $0.baseAddress! + call.bodyOffset, count: n) }  // n > 0: not empty
            call.bodyOffset += n
        }
        if call.bodyOffset == call.body.count {
            call.body.removeAll(keepingCapacity: call.sendOpen)
            call.bodyOffset = 0
            if call.sendOpen {
                // A streaming call with nothing queued: nghttp2 asks again after `send` or `closeSend` resumes it.
                if n == 0 {
                    call.deferred = true
                    return Int(NGHTTP2_ERR_DEFERRED.rawValue)
                }
            } else {
                flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
            }
        }
        return n
    }

    func deliverFinished() {
        // Completions may start new calls; deliver only at the outermost level, and loop in case
        // they queued more results.
        guard inCallback == 0 else { return }
        inCallback += 1
        defer { inCallback -= 1 }
        while !finished.isEmpty || !streamMessages.isEmpty {
            let messages = streamMessages
            streamMessages = []
            for (handler, message, wireBytes) in messages { handler(message, wireBytes) }
            let batch = finished
            finished = []
            for (completion, result) in batch { completion(result) }
        }
    }
}
