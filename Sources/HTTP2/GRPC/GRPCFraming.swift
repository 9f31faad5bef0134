/// gRPC's length-prefixed message: 1 byte compressed flag, 4 bytes big-endian length, payload.
package enum GRPCFraming {
    package static let prefixLength = 5

    /// Frames one uncompressed message.
    package static func frame(_ message: [UInt8]) -> [UInt8] {
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
package struct GRPCMessageDeframer: Sendable {
    package enum Event: Equatable, Sendable {
        case message([UInt8])
        /// The message is flagged compressed; we negotiate no compression, so this is an error.
        case compressed
        /// The prefix announced more than `maxMessageSize` bytes.
        case tooLarge(Int)
    }

    package let maxMessageSize: Int
    private var buffer: [UInt8] = []
    /// Set after `.compressed`/`.tooLarge`: further input is ignored.
    package private(set) var failed = false

    package init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// True when a partial message (or a partial prefix) is still buffered.
    package var hasPartialMessage: Bool { !buffer.isEmpty }

    /// The payload length announced by the prefix of the message being reassembled; nil before its 5-byte prefix
    /// has arrived (the buffer always starts at a message's prefix).
    package var announcedLength: Int? {
        guard !failed, buffer.count >= GRPCFraming.prefixLength else { return nil }
        return Int(buffer[1]) << 24 | Int(buffer[2]) << 16 | Int(buffer[3]) << 8 | Int(buffer[4])
    }

    /// Makes room for the whole message being reassembled at once (its length already admitted), so the buffer does
    /// not grow by doubling past what was admitted.
    mutating func reserveCapacityForAnnouncedMessage() {
        guard let length = announcedLength, length <= maxMessageSize else { return }
        buffer.reserveCapacity(GRPCFraming.prefixLength + length)
    }

    /// Drops what is buffered and ignores further input (the request was answered without it).
    mutating func discard() {
        failed = true
        buffer = []
    }

    /// Appends bytes and returns every event they complete, in order. (Internal: the sessions
    /// feed nghttp2's chunk pointers straight in, without an intermediate array.)
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> [Event] {
        guard !failed else { return [] }
        buffer.append(contentsOf: bytes)
        return drain()
    }

    /// Appends bytes and returns every event they complete, in order.
    package mutating func append(_ bytes: [UInt8]) -> [Event] {
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
        // A drained buffer lets its storage go: it may have grown to a whole message's size.
        if start == buffer.count { buffer = [] } else if start > 0 { buffer.removeFirst(start) }
        return events
    }
}
