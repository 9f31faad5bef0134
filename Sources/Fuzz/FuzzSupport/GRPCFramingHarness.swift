import HTTP2

/// FuzzGRPCFraming: the gRPC length-prefixed message deframer and the grpc-message / grpc-timeout codecs.
///
/// Input: byte 0 picks the size limit (low 3 bits) and the chunk size (high 5 bits, 1…32); the rest is the
/// DATA stream. The stream is fed in chunks and, separately, in one piece: both must give the same events,
/// and every message must be exactly the payload its prefix announced, at that offset.
package enum GRPCFramingHarness {
    static let limits = [0, 1, 5, 64, 1000, 4 * 1024 * 1024, 1 << 31, Int.max]

    /// Every broken invariant (empty when all hold).
    package static func run(_ input: [UInt8]) -> [String] {
        guard let control = input.first else { return [] }
        let stream = Array(input.dropFirst())
        let limit = limits[Int(control & 7)]
        let chunkSize = Int(control >> 3) + 1
        var problems: [String] = []

        var whole = GRPCMessageDeframer(maxMessageSize: limit)
        let expected = whole.append(stream)
        var chunked = GRPCMessageDeframer(maxMessageSize: limit)
        var events: [GRPCMessageDeframer.Event] = []
        var start = 0
        while start < stream.count {
            let end = min(start + chunkSize, stream.count)
            events += chunked.append(Array(stream[start..<end]))
            start = end
        }
        if events != expected { problems.append("chunked and whole deframing disagree") }
        if chunked.failed != whole.failed || chunked.hasPartialMessage != whole.hasPartialMessage {
            problems.append("chunked and whole deframing end in different states")
        }

        var offset = 0
        for event in expected {
            guard case .message(let message) = event else { continue }
            if message.count > limit { problems.append("message of \(message.count) bytes over the limit \(limit)") }
            guard offset + 5 + message.count <= stream.count else {
                problems.append("message at \(offset) runs past the input")
                return problems
            }
            let length = Int(stream[offset + 1]) << 24 | Int(stream[offset + 2]) << 16 | Int(stream[offset + 3]) << 8 | Int(stream[offset + 4])
            if stream[offset] & 1 != 0 || length != message.count || !stream[(offset + 5)..<(offset + 5 + message.count)].elementsEqual(message) {
                problems.append("message at \(offset) is not the payload its prefix announced")
            }
            offset += 5 + message.count
            // Framing what came out gives the prefix back (flag bits other than "compressed" are dropped).
            var reframed = GRPCMessageDeframer(maxMessageSize: limit)
            if reframed.append(GRPCFraming.frame(message)) != [.message(message)] { problems.append("reframed message differs") }
        }
        if !whole.failed && whole.hasPartialMessage != (offset < stream.count) {
            problems.append("partial-message state disagrees with the bytes left over")
        }

        // The grpc-message and grpc-timeout header codecs see peer bytes too.
        let text = String(decoding: stream, as: UTF8.self)
        if GRPCMessageEncoding.decode(GRPCMessageEncoding.encode(text)) != text { problems.append("grpc-message does not round-trip") }
        _ = GRPCMessageEncoding.decode(text)
        if let timeout = GRPCTimeout.parse(text), GRPCTimeout.parse(GRPCTimeout.encode(timeout)).map({ $0 >= timeout }) != true {
            problems.append("grpc-timeout '\(text)' encodes shorter")
        }
        return problems
    }
}
