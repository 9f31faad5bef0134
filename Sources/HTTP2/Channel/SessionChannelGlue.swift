import NIOCore

/// What the gRPC server and client channel handlers share around their nghttp2 session: its output written in
/// bounded chunks while the channel is writable, and reads held while it is not (a peer that does not read what we
/// send does not get to send more). Used on the channel's event loop only.
struct SessionChannelGlue {
    /// Most bytes taken from the session per write.
    static let writeChunk = 64 * 1024

    private var readHeld = false

    /// Writes what `pendingOutput` yields while the channel is writable, then flushes if anything was written.
    /// Throws what `pendingOutput` throws (a session that failed: the caller closes the connection).
    static func writeOutput(_ context: ChannelHandlerContext, _ pendingOutput: (Int) throws -> ByteBuffer?) throws {
        var wrote = false
        while context.channel.isWritable, let out = try pendingOutput(writeChunk) {
            context.write(NIOAny(out), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
    }

    /// A read the pipeline asked for: passed on while the channel is writable, else held.
    mutating func read(_ context: ChannelHandlerContext) {
        if context.channel.isWritable { context.read() } else { readHeld = true }
    }

    /// The channel became writable again: a held read goes out (after the caller wrote its pending output).
    mutating func becameWritable(_ context: ChannelHandlerContext) {
        guard readHeld else { return }
        readHeld = false
        context.read()
    }
}
