/// gRPC's length-prefixed message: 1 byte compressed flag, 4 bytes big-endian length, payload.
public enum GRPCFraming {
    public static let prefixLength = 5

    /// Frames one uncompressed message.
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + prefixLength)
        let n = UInt32(message.count)
        out.append(0)
        out.append(UInt8(truncatingIfNeeded: n >> 24))
        out.append(UInt8(truncatingIfNeeded: n >> 16))
        out.append(UInt8(truncatingIfNeeded: n >> 8))
        out.append(UInt8(truncatingIfNeeded: n))
        out.append(contentsOf: message)
        return out
    }
}

/// Reassembles length-prefixed messages from DATA chunks that may split anywhere, enforcing a size
/// limit as soon as the prefix is seen (so an oversized message is refused before it is buffered).
public struct GRPCMessageDeframer: Sendable {
    public enum Event: Equatable, Sendable {
        case message([UInt8])
        /// The message is flagged compressed; we negotiate no compression, so this is an error.
        case compressed
        /// The prefix announced more than `maxMessageSize` bytes.
        case tooLarge(Int)
    }

    public let maxMessageSize: Int
    private var buffer: [UInt8] = []
    /// Set after `.compressed`/`.tooLarge`: further input is ignored.
    public private(set) var failed = false

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// True when a partial message (or a partial prefix) is still buffered.
    public var hasPartialMessage: Bool { !buffer.isEmpty }

    /// Appends bytes and returns every event they complete, in order. (Internal: the sessions
    /// feed nghttp2's chunk pointers straight in, without an intermediate array.)
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> [Event] {
        guard !failed else { return [] }
        buffer.append(contentsOf: bytes)
        return drain()
    }

    /// Appends bytes and returns every event they complete, in order.
    public mutating func append(_ bytes: [UInt8]) -> [Event] {
        bytes.withUnsafeBytes { append($0) }
    }

    private mutating func drain() -> [Event] {
        var events: [Event] = []
        var start = 0
        while buffer.count - start >= GRPCFraming.prefixLength {
            let flag = buffer[start]
            let length =
                Int(buffer[start + 1]) << 24 | Int(buffer[start + 2]) << 16
                | Int(buffer[start + 3]) << 8 | Int(buffer[start + 4])
            if flag & 1 != 0 {
                failed = true
                buffer = []
                return events + [.compressed]
            }
            if length > maxMessageSize {
                failed = true
                buffer = []
                return events + [.tooLarge(length)]
            }
            guard buffer.count - start - GRPCFraming.prefixLength >= length else { break }
            let bodyStart = start + GRPCFraming.prefixLength
            events.append(.message(Array(buffer[bodyStart..<bodyStart + length])))
            start = bodyStart + length
        }
        if start > 0 { buffer.removeFirst(start) }
        return events
    }
}
