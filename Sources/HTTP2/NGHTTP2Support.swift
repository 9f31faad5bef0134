import CNghttp2
import NIOCore

/// An error nghttp2 reported (a negative `nghttp2_error`), with its text.
public struct H2SessionError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String
    public var description: String {
        "\(operation) failed: \(String(cString: nghttp2_strerror(code))) (\(code))"
    }
}

/// Header name/value pair as handed to nghttp2: bytes, not Strings, so constant headers are
/// converted once and not per request.
struct H2Header {
    var name: [UInt8]
    var value: [UInt8]

    init(_ name: String, _ value: String) {
        self.name = Array(name.utf8)
        self.value = Array(value.utf8)
    }

    init(name: [UInt8], value: [UInt8]) {
        self.name = name
        self.value = value
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
            let base = storage.baseAddress!
            var offset = 0
            for (i, header) in headers.enumerated() {
                let namePtr = base + offset
                header.name.withUnsafeBufferPointer { namePtr.update(from: $0.baseAddress!, count: $0.count) }
                offset += header.name.count
                let valuePtr = base + offset
                if !header.value.isEmpty {
                    header.value.withUnsafeBufferPointer { valuePtr.update(from: $0.baseAddress!, count: $0.count) }
                }
                offset += header.value.count
                nva[i] = nghttp2_nv(
                    name: namePtr, value: valuePtr, namelen: header.name.count, valuelen: header.value.count,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
            }
            return body(UnsafePointer(nva.baseAddress!), headers.count)
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
        out!.writeBytes(chunk)
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

/// Settings both our sessions advertise.
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
