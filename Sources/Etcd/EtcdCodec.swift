internal import CProtobufC
internal import DTMProtoC
import ProtoCSupport

/// A key and its value as etcd stores them.
package struct EtcdKeyValue: Sendable, Equatable {
    package var key: String
    package var value: String
    package var lease: Int64
}

/// One watch response: the events of a revision range, or the watch's creation / cancellation.
struct EtcdWatchResponse: Sendable {
    enum EventType: Sendable { case put, delete }
    var watchID: Int64
    var created: Bool
    var canceled: Bool
    var cancelReason: String
    var compactRevision: Int64
    var revision: Int64
    var events: [(type: EventType, kv: EtcdKeyValue)]
}

/// protobuf-c ⇄ Swift for the etcd messages the client uses (Protos/etcdserverpb/rpc.proto). The only code that
/// touches the generated C structs: requests are built in memory that lives through `pack`, every unpacked
/// response is freed before returning, and a pack shorter than the size protobuf-c computed is an error.
enum EtcdCodec {
    // MARK: - Requests

    static func range(key: [UInt8], rangeEnd: [UInt8], limit: Int64, revision: Int64 = 0) throws(EtcdError) -> [UInt8] {
        var m = Etcdserverpb__RangeRequest()
        etcdserverpb__range_request__init(&m)
        m.limit = limit
        m.revision = revision
        return try withBinary(key) { key throws(EtcdError) in
            try withBinary(rangeEnd) { end throws(EtcdError) in
                m.key = key
                m.range_end = end
                return try pack(&m, etcdserverpb__range_request__get_packed_size, etcdserverpb__range_request__pack)
            }
        }
    }

    static func put(key: [UInt8], value: [UInt8], lease: Int64) throws(EtcdError) -> [UInt8] {
        var m = Etcdserverpb__PutRequest()
        etcdserverpb__put_request__init(&m)
        m.lease = lease
        return try withBinary(key) { key throws(EtcdError) in
            try withBinary(value) { value throws(EtcdError) in
                m.key = key
                m.value = value
                return try pack(&m, etcdserverpb__put_request__get_packed_size, etcdserverpb__put_request__pack)
            }
        }
    }

    static func leaseGrant(ttl: Int64) throws(EtcdError) -> [UInt8] {
        var m = Etcdserverpb__LeaseGrantRequest()
        etcdserverpb__lease_grant_request__init(&m)
        m.ttl = ttl
        return try pack(&m, etcdserverpb__lease_grant_request__get_packed_size, etcdserverpb__lease_grant_request__pack)
    }

    static func leaseRevoke(id: Int64) throws(EtcdError) -> [UInt8] {
        var m = Etcdserverpb__LeaseRevokeRequest()
        etcdserverpb__lease_revoke_request__init(&m)
        m.id = id
        return try pack(&m, etcdserverpb__lease_revoke_request__get_packed_size, etcdserverpb__lease_revoke_request__pack)
    }

    static func leaseKeepAlive(id: Int64) throws(EtcdError) -> [UInt8] {
        var m = Etcdserverpb__LeaseKeepAliveRequest()
        etcdserverpb__lease_keep_alive_request__init(&m)
        m.id = id
        return try pack(&m, etcdserverpb__lease_keep_alive_request__get_packed_size, etcdserverpb__lease_keep_alive_request__pack)
    }

    static func watchCreate(key: [UInt8], rangeEnd: [UInt8], startRevision: Int64) throws(EtcdError) -> [UInt8] {
        var create = Etcdserverpb__WatchCreateRequest()
        etcdserverpb__watch_create_request__init(&create)
        create.start_revision = startRevision
        return try withBinary(key) { key throws(EtcdError) in
            try withBinary(rangeEnd) { end throws(EtcdError) in
                create.key = key
                create.range_end = end
                return try withUnsafeMutablePointer(to: &create) { createPointer throws(EtcdError) in
                    var m = Etcdserverpb__WatchRequest()
                    etcdserverpb__watch_request__init(&m)
                    m.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST
                    m.create_request = createPointer
                    return try pack(&m, etcdserverpb__watch_request__get_packed_size, etcdserverpb__watch_request__pack)
                }
            }
        }
    }

    static func authenticate(name: String, password: String) throws(EtcdError) -> [UInt8] {
        var m = Etcdserverpb__AuthenticateRequest()
        etcdserverpb__authenticate_request__init(&m)
        var nameBytes = Array(name.utf8CString)
        var passwordBytes = Array(password.utf8CString)
        return try nameBytes.withUnsafeMutableBufferPointer { namePointer throws(EtcdError) in
            try passwordBytes.withUnsafeMutableBufferPointer { passwordPointer throws(EtcdError) in
                m.name = namePointer.baseAddress  // utf8CString holds at least the terminating NUL
                m.password = passwordPointer.baseAddress
                return try pack(&m, etcdserverpb__authenticate_request__get_packed_size, etcdserverpb__authenticate_request__pack)
            }
        }
    }

    // MARK: - Responses

    static func rangeResponse(_ bytes: [UInt8]) throws(EtcdError) -> (revision: Int64, kvs: [EtcdKeyValue], more: Bool) {
        try unpack(bytes, "RangeResponse", etcdserverpb__range_response__unpack, etcdserverpb__range_response__free_unpacked) { m in
            let kvs = (0..<m.n_kvs).compactMap { m.kvs[$0].map { keyValue($0.pointee) } }
            return (revision(m.header), kvs, m.more != 0)
        }
    }

    static func putResponse(_ bytes: [UInt8]) throws(EtcdError) -> Int64 {
        try unpack(bytes, "PutResponse", etcdserverpb__put_response__unpack, etcdserverpb__put_response__free_unpacked) { revision($0.header) }
    }

    static func leaseGrantResponse(_ bytes: [UInt8]) throws(EtcdError) -> (id: Int64, ttl: Int64, error: String) {
        try unpack(bytes, "LeaseGrantResponse", etcdserverpb__lease_grant_response__unpack, etcdserverpb__lease_grant_response__free_unpacked) {
            ($0.id, $0.ttl, ProtoC.string($0.error))
        }
    }

    static func leaseKeepAliveResponse(_ bytes: [UInt8]) throws(EtcdError) -> (id: Int64, ttl: Int64) {
        try unpack(
            bytes, "LeaseKeepAliveResponse", etcdserverpb__lease_keep_alive_response__unpack,
            etcdserverpb__lease_keep_alive_response__free_unpacked
        ) { ($0.id, $0.ttl) }
    }

    static func authenticateResponse(_ bytes: [UInt8]) throws(EtcdError) -> String {
        try unpack(bytes, "AuthenticateResponse", etcdserverpb__authenticate_response__unpack, etcdserverpb__authenticate_response__free_unpacked) {
            ProtoC.string($0.token)
        }
    }

    static func watchResponse(_ bytes: [UInt8]) throws(EtcdError) -> EtcdWatchResponse {
        try unpack(bytes, "WatchResponse", etcdserverpb__watch_response__unpack, etcdserverpb__watch_response__free_unpacked) { m in
            var events: [(type: EtcdWatchResponse.EventType, kv: EtcdKeyValue)] = []
            for i in 0..<m.n_events {
                guard let event = m.events[i]?.pointee, let kv = event.kv?.pointee else { continue }
                events.append((event.type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? .delete : .put, keyValue(kv)))
            }
            return EtcdWatchResponse(
                watchID: m.watch_id, created: m.created != 0, canceled: m.canceled != 0, cancelReason: ProtoC.string(m.cancel_reason),
                compactRevision: m.compact_revision, revision: revision(m.header), events: events)
        }
    }

    // MARK: - Helpers

    private static func keyValue(_ kv: Mvccpb__KeyValue) -> EtcdKeyValue {
        EtcdKeyValue(key: ProtoC.text(kv.key), value: ProtoC.text(kv.value), lease: kv.lease)
    }

    private static func revision(_ header: UnsafeMutablePointer<Etcdserverpb__ResponseHeader>?) -> Int64 {
        header?.pointee.revision ?? 0
    }

    /// `bytes` as a protobuf-c binary field, valid inside `body` only.
    private static func withBinary<R>(_ bytes: [UInt8], _ body: (ProtobufCBinaryData) throws(EtcdError) -> R) throws(EtcdError) -> R {
        var copy = bytes
        return try copy.withUnsafeMutableBufferPointer { buffer throws(EtcdError) in
            try body(ProtobufCBinaryData(len: buffer.count, data: buffer.count == 0 ? nil : buffer.baseAddress))
        }
    }

    private static func pack<M>(
        _ message: inout M, _ size: (UnsafePointer<M>) -> Int, _ pack: (UnsafePointer<M>, UnsafeMutablePointer<UInt8>) -> Int
    ) throws(EtcdError) -> [UInt8] {
        do {
            return try ProtoC.pack(&message, size, pack)
        } catch {
            throw EtcdError.protocolError(error.description)
        }
    }

    private static func unpack<M, R>(
        _ bytes: [UInt8], _ name: String,
        _ unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?,
        _ free: (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void,
        _ read: (M) -> R
    ) throws(EtcdError) -> R {
        guard let result = ProtoC.unpack(bytes, unpack, free, read) else {
            throw EtcdError.protocolError("etcd answered with a message that is not a valid etcdserverpb.\(name)")
        }
        return result
    }
}
