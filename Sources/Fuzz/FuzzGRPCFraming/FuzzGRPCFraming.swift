// libFuzzer target: the gRPC length-prefixed message deframer (HTTP2/GRPCFraming.swift).
//
// Input: byte 0 picks the size limit (low 3 bits) and the chunk size (high 5 bits, 1…32); the rest is
// the DATA stream. The stream is fed in chunks and, separately, in one piece: both must give the same
// events, and every message must be exactly the payload its prefix announced, at that offset.
import FuzzSupport
import FoundationEssentials
import HTTP2

private let limits = [0, 1, 5, 64, 1000, 4 * 1024 * 1024, 1 << 31, Int.max]

func fuzzOne(_ input: UnsafeBufferPointer<UInt8>) {
    guard let control = input.first else { return }
    let stream = Array(input.dropFirst())
    let limit = limits[Int(control & 7)]
    let chunkSize = Int(control >> 3) + 1

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
    precondition(events == expected, "chunked and whole deframing disagree")
    precondition(chunked.failed == whole.failed && chunked.hasPartialMessage == whole.hasPartialMessage)

    var offset = 0
    for event in expected {
        guard case .message(let message) = event else { continue }
        precondition(message.count <= limit)
        let length = Int(stream[offset + 1]) << 24 | Int(stream[offset + 2]) << 16 | Int(stream[offset + 3]) << 8 | Int(stream[offset + 4])
        precondition(stream[offset] & 1 == 0 && length == message.count)
        precondition(stream[(offset + 5)..<(offset + 5 + length)].elementsEqual(message))
        offset += 5 + length
        // Framing what came out gives the prefix back (flag bits other than "compressed" are dropped).
        var reframed = GRPCMessageDeframer(maxMessageSize: limit)
        precondition(reframed.append(GRPCFraming.frame(message)) == [.message(message)])
    }
    if !whole.failed { precondition(whole.hasPartialMessage == (offset < stream.count)) }

    // The grpc-message and grpc-timeout header codecs see peer bytes too.
    let text = String(decoding: stream, as: UTF8.self)
    precondition(GRPCMessageEncoding.decode(GRPCMessageEncoding.encode(text)) == text)
    _ = GRPCMessageEncoding.decode(text)
    if let timeout = GRPCTimeout.parse(text) {
        precondition(GRPCTimeout.parse(GRPCTimeout.encode(timeout)).map { $0 >= timeout } == true)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(UnsafeBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
/// Without libFuzzer: runs the harness on each file named on the command line.
@main struct Replay {
    static func main() throws { try replayFiles(fuzzOne) }
}
#endif
