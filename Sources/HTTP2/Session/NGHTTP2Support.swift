internal import CNghttp2
import NIOCore

/// An error nghttp2 reported (a negative `nghttp2_error`), with its text.
package struct H2SessionError: Error, CustomStringConvertible, Sendable {
    package let code: Int32
    package let operation: String
    package var description: String {
        "\(operation) failed: \(String(cString: nghttp2_strerror(code))) (\(code))"
    }
}

/// Header name/value pair as handed to nghttp2. Constant headers are byte arrays made once; per-call
/// names and values (path, metadata) stay Strings until `withNVArray` copies their UTF-8 into its scratch
/// buffer, rather than becoming two arrays each per call.
struct H2Header {
    enum Bytes {
        case bytes([UInt8])
        case text(String)

        var count: Int {
            switch self {
            case .bytes(let b): b.count
            case .text(let s): s.utf8.count
            }
        }

        /// The bytes as an array (tests and diagnostics; the hot path copies with `copy(to:)`).
        var array: [UInt8] {
            switch self {
            case .bytes(let b): b
            case .text(let s): Array(s.utf8)
            }
        }

        /// Copies the bytes to `target`, which has room for `count` of them.
        func copy(to target: UnsafeMutablePointer<UInt8>) {
            switch self {
            case .bytes(let b):
                b.withUnsafeBufferPointer { if let base = $0.baseAddress { target.update(from: base, count: $0.count) } }
            case .text(let s):
                let copied: Void? = s.utf8.withContiguousStorageIfAvailable {
                    if let base = $0.baseAddress { target.update(from: base, count: $0.count) }
                }
                if copied == nil { _ = UnsafeMutableBufferPointer(start: target, count: s.utf8.count).initialize(from: s.utf8) }
            }
        }
    }

    var name: Bytes
    var value: Bytes

    init(_ name: String, _ value: String) {
        self.name = .text(name)
        self.value = .text(value)
    }

    init(name: [UInt8], value: [UInt8]) {
        self.name = .bytes(name)
        self.value = .bytes(value)
    }

    init(name: [UInt8], value: String) {
        self.name = .bytes(name)
        self.value = .text(value)
    }
}

/// Calls `body` with an `nghttp2_nv` array for `headers`. nghttp2's submit functions copy names
/// and values (we never pass NGHTTP2_NV_FLAG_NO_COPY_*), so the pointers only need to live for
/// the duration of the call; they are carved out of one contiguous scratch allocation.
func withNVArray<R>(_ headers: [H2Header], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
    // nghttp2 copies names and values while the submit call runs, so both buffers only live through `body`:
    // temporary (stack) allocations spare two mallocs per HEADERS frame.
    let total = headers.reduce(0) { $0 + $1.name.count + $1.value.count }
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(total, 1)) { storage in
        withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(headers.count, 1)) { nva in
            let base = storage.baseAddress!  // capacity ≥ 1
            var offset = 0
            for (i, header) in headers.enumerated() {
                let namePtr = base + offset
                let nameCount = header.name.count
                header.name.copy(to: namePtr)
                offset += nameCount
                let valuePtr = base + offset
                let valueCount = header.value.count
                header.value.copy(to: valuePtr)
                offset += valueCount
                nva[i] = nghttp2_nv(
                    name: namePtr, value: valuePtr, namelen: nameCount, valuelen: valueCount,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
            }
            return body(UnsafePointer(nva.baseAddress!), headers.count)  // capacity ≥ 1
        }
    }
}

/// Drains what nghttp2 wants to send into one buffer (nil when there is nothing), stopping once
/// `limit` bytes are collected so the owner can respect back-pressure between writes (nghttp2
/// pulls body bytes from the data providers only as we ask, so nothing piles up elsewhere).
/// `nghttp2_session_mem_send` returns a pointer valid until the next call, so each chunk is
/// copied before asking for the next.
func drainSessionOutput(_ session: OpaquePointer, allocator: ByteBufferAllocator, limit: Int = .max) throws -> ByteBuffer? {
    var out: ByteBuffer?
    while (out?.readableBytes ?? 0) < limit {
        var data: UnsafePointer<UInt8>?
        let n = nghttp2_session_mem_send(session, &data)
        if n < 0 { throw H2SessionError(code: Int32(n), operation: "nghttp2_session_mem_send") }
        if n == 0 { return out }
        let chunk = UnsafeRawBufferPointer(start: data, count: n)
        if out == nil { out = allocator.buffer(capacity: max(n, 1024)) }
        out!.writeBytes(chunk)  // allocated on the line above
    }
    return out
}

/// Feeds received bytes to nghttp2. `mem_recv` consumes everything unless it fails, in which case
/// the session is unusable: the owner flushes output (nghttp2 queues a GOAWAY) and closes.
func feedSession(_ session: OpaquePointer, _ bytes: UnsafeRawBufferPointer) throws {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    let n = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    if n < 0 { throw H2SessionError(code: Int32(n), operation: "nghttp2_session_mem_recv") }
}

/// Creates a client or server session. With `manualFlowControl` nghttp2 sends no WINDOW_UPDATE by itself: the owner
/// returns received DATA bytes with `consumeReceived` once it has processed (or budgeted) them, so a peer can send
/// no more than the windows allow past what the owner accepted.
/// A new session; its `user_data` (the Swift object its callbacks reach) is set by the owner once it is initialised
/// (`nghttp2_session_set_user_data`), before the session is fed any input.
func newSession(server: Bool, callbacks: OpaquePointer?, manualFlowControl: Bool) throws -> OpaquePointer {
    var option: OpaquePointer?
    guard nghttp2_option_new(&option) == 0, let option else {
        throw H2SessionError(code: Int32(NGHTTP2_ERR_NOMEM.rawValue), operation: "nghttp2_option_new")
    }
    defer { nghttp2_option_del(option) }
    if manualFlowControl { nghttp2_option_set_no_auto_window_update(option, 1) }
    var session: OpaquePointer?
    let rv =
        server
        ? nghttp2_session_server_new2(&session, callbacks, nil, option)
        : nghttp2_session_client_new2(&session, callbacks, nil, option)
    guard rv == 0, let session else {
        throw H2SessionError(code: rv, operation: server ? "nghttp2_session_server_new2" : "nghttp2_session_client_new2")
    }
    return session
}

/// Under manual flow control: DATA bytes of `streamID` were processed, so the peer may send that many more
/// (nghttp2 queues WINDOW_UPDATEs once half a window is consumed). `connectionBytes` reopen the connection's window,
/// `streamBytes` the stream's; a stream that closed needs none (nghttp2 ignores it). Returns nghttp2's first failure
/// (0: done).
func consumeReceived(_ session: OpaquePointer, streamID: Int32, connectionBytes: Int, streamBytes: Int) -> Int32 {
    let both = max(min(connectionBytes, streamBytes), 0)
    var rv: Int32 = 0
    if both > 0 { rv = nghttp2_session_consume(session, streamID, both) }
    if rv == 0, connectionBytes > both { rv = nghttp2_session_consume_connection(session, connectionBytes - both) }
    if rv == 0, streamBytes > both { rv = nghttp2_session_consume_stream(session, streamID, streamBytes - both) }
    return rv
}

/// Queues our SETTINGS and opens the connection-level receive window to `connectionWindowSize` (both sides
/// of a session start the same way).
func submitSettings(_ session: OpaquePointer, _ settings: [(nghttp2_settings_id, UInt32)], connectionWindowSize: Int32) throws {
    let entries = settings.map { nghttp2_settings_entry(settings_id: Int32($0.0.rawValue), value: $0.1) }
    let rv = entries.withUnsafeBufferPointer {
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress, $0.count)
    }
    if rv != 0 { throw H2SessionError(code: rv, operation: "nghttp2_submit_settings") }
    let windowRV = nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, connectionWindowSize)
    if windowRV != 0 { throw H2SessionError(code: windowRV, operation: "nghttp2_session_set_local_window_size") }
}

extension String {
    /// Strings from nghttp2's (pointer, length) pairs.
    init(h2Bytes: UnsafePointer<UInt8>?, count: Int) {
        guard let h2Bytes, count > 0 else {
            self = ""
            return
        }
        self = String(decoding: UnsafeBufferPointer(start: h2Bytes, count: count), as: UTF8.self)
    }
}

/// Byte constants for the headers on the hot path.
enum H2Names {
    static let status = Array(":status".utf8)
    static let method = Array(":method".utf8)
    static let scheme = Array(":scheme".utf8)
    static let path = Array(":path".utf8)
    static let authority = Array(":authority".utf8)
    static let contentType = Array("content-type".utf8)
    static let te = Array("te".utf8)
    static let grpcStatus = Array("grpc-status".utf8)
    static let grpcMessage = Array("grpc-message".utf8)
    static let grpcTimeout = Array("grpc-timeout".utf8)
    static let applicationGRPC = Array("application/grpc".utf8)
    static let trailers = Array("trailers".utf8)
    static let post = Array("POST".utf8)
    static let http = Array("http".utf8)
    static let status200 = Array("200".utf8)
}

/// `application/grpc`, `application/grpc+proto`, `application/grpc;charset=…` are gRPC; anything
/// else (including `application/grpcfoo`) is not. Same rule as grpc-go's `grpcutil.ContentSubtype`.
func isGRPCContentType(_ value: String) -> Bool {
    let bytes = value.utf8
    guard bytes.starts(with: H2Names.applicationGRPC) else { return false }
    guard bytes.count > H2Names.applicationGRPC.count else { return true }
    let next = bytes[bytes.index(bytes.startIndex, offsetBy: H2Names.applicationGRPC.count)]
    return next == UInt8(ascii: "+") || next == UInt8(ascii: ";")
}
