package import CProtobufC

/// The one pack/unpack helper over protobuf-c for the targets that hold generated messages (DTMGRPC's `dtmgimp`,
/// the Etcd client's `etcdserverpb`): a message is packed into exactly the size protobuf-c computed for it, an
/// unpacked one is freed before the reader's result is returned, and binary and string fields are copied out.
package enum ProtoC {
    /// `message` packed with the generated `size` and `pack` functions.
    package static func pack<M>(
        _ message: inout M, _ size: (UnsafePointer<M>) -> Int, _ pack: (UnsafePointer<M>, UnsafeMutablePointer<UInt8>) -> Int
    ) throws(ProtoPackError) -> [UInt8] {
        try withUnsafePointer(to: &message) { m throws(ProtoPackError) in try Self.pack(size: size(m)) { pack(m, $0) } }
    }

    /// A message packed into exactly the `size` bytes protobuf-c computed for it; anything else is an error (and
    /// never more than `size` bytes are kept).
    package static func pack(size: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) throws(ProtoPackError) -> [UInt8] {
        guard size > 0 else { return [] }
        var written = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            written = body(buffer.baseAddress!)  // capacity ≥ 1 here, so the base address exists
            count = min(max(written, 0), size)
        }
        guard written == size else { throw ProtoPackError(written: written, expected: size) }
        return bytes
    }

    /// `read` applied to the message unpacked from `bytes`, which is freed afterwards; nil when the bytes are not a
    /// valid message of that type.
    package static func unpack<M, R, E: Error>(
        _ bytes: [UInt8], _ unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?,
        _ free: (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void, _ read: (M) throws(E) -> R
    ) throws(E) -> R? {
        guard let message = bytes.withUnsafeBufferPointer({ unpack(nil, $0.count, $0.baseAddress) }) else { return nil }
        defer { free(message, nil) }
        return try read(message.pointee)
    }

    /// A `bytes` field's content.
    package static func bytes(_ b: ProtobufCBinaryData) -> [UInt8] {
        guard b.len > 0, let data = b.data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: b.len))
    }

    /// A `bytes` field read as UTF-8 text (invalid sequences replaced).
    package static func text(_ b: ProtobufCBinaryData) -> String {
        guard b.len > 0, let data = b.data else { return "" }
        return String(decoding: UnsafeBufferPointer(start: data, count: b.len), as: UTF8.self)
    }

    /// A `string` field (protobuf-c's NUL-terminated char pointer, nil for the empty default).
    package static func string(_ p: UnsafeMutablePointer<CChar>?) -> String {
        p.map { String(cString: $0) } ?? ""
    }
}

/// protobuf-c packed a different number of bytes than it computed for the message.
package struct ProtoPackError: Error, CustomStringConvertible {
    package let written: Int
    package let expected: Int
    package var description: String { "protobuf-c packed \(written) bytes of a \(expected)-byte message" }
}
