internal import CProtobufC
internal import DTMProtoC
import ProtoCSupport

/// protobuf-c ⇄ Swift for server reflection: the embedded descriptors of the served .proto files, and
/// `ServerReflectionRequest` → `ServerReflectionResponse`. v1 and v1alpha share one wire format, so the
/// v1alpha structs serve both.
extension ProtoCodec {
    /// One served .proto file: its path, its `FileDescriptorProto` bytes, what it imports and the
    /// fully-qualified symbols it defines (messages and enums at any depth, services, `Service.Method`).
    struct ServedFile: Sendable {
        var name: String
        var descriptor: [UInt8]
        var dependencies: [String]
        var symbols: [String]
    }

    /// The files scripts/gen-protos.sh embedded, indexed by decoding each descriptor's names.
    /// The `!`s here and in `collectMessage` read arrays protobuf-c filled with exactly n_… non-null entries.
    static func servedFiles() -> [ServedFile] {
        (0..<dtm_served_descriptors_count()).compactMap { i in
            guard let entry = dtm_served_descriptor(i)?.pointee else { return nil }
            let bytes = Array(UnsafeBufferPointer(start: entry.data, count: entry.length))
            guard let index = bytes.withUnsafeBufferPointer({ swiftdtm__descriptor__file_index__unpack(nil, $0.count, $0.baseAddress) })
            else { return nil }
            defer { swiftdtm__descriptor__file_index__free_unpacked(index, nil) }
            let f = index.pointee
            let package = ProtoC.string(f.package)
            let prefix = package.isEmpty ? "" : package + "."
            var symbols: [String] = []
            for m in 0..<f.n_message_type { collectMessage(f.message_type[m]!, prefix: prefix, into: &symbols) }
            for e in 0..<f.n_enum_type { symbols.append(prefix + ProtoC.string(f.enum_type[e]!.pointee.name)) }
            for s in 0..<f.n_service {
                let service = f.service[s]!.pointee
                let name = prefix + ProtoC.string(service.name)
                symbols.append(name)
                for m in 0..<service.n_method { symbols.append(name + "." + ProtoC.string(service.method[m]!.pointee.name)) }
            }
            return ServedFile(
                name: String(cString: entry.name), descriptor: bytes,
                dependencies: (0..<f.n_dependency).map { ProtoC.string(f.dependency[$0]) }, symbols: symbols)
        }
    }

    private static func collectMessage(
        _ message: UnsafeMutablePointer<Swiftdtm__Descriptor__MessageIndex>, prefix: String, into symbols: inout [String]
    ) {
        let m = message.pointee
        let name = prefix + ProtoC.string(m.name)
        symbols.append(name)
        for i in 0..<m.n_nested_type { collectMessage(m.nested_type[i]!, prefix: name + ".", into: &symbols) }
        for i in 0..<m.n_enum_type { symbols.append(name + "." + ProtoC.string(m.enum_type[i]!.pointee.name)) }
    }

    /// What a reflection request asks.
    enum ReflectionQuery {
        case fileByFilename(String)
        case fileContainingSymbol(String)
        case fileContainingExtension(type: String, number: Int32)
        case allExtensionNumbersOfType(String)
        case listServices
    }

    /// What the server answers; `error` is an in-band `ErrorResponse` (the stream goes on).
    enum ReflectionAnswer {
        case files([[UInt8]])
        case services([String])
        case extensionNumbers(baseType: String)
        case error(code: Int32, message: String)
    }

    /// Decodes a `ServerReflectionRequest`, asks `resolve`, and encodes the `ServerReflectionResponse`
    /// (with `valid_host` and `original_request` echoed, as grpc-go does). Nil when the bytes are not a
    /// request or name no query: the call then ends with a status, not an answer.
    static func answerReflection(_ bytes: [UInt8], resolve: (ReflectionQuery) -> ReflectionAnswer) throws(ProtoPackError) -> [UInt8]? {
        let request = bytes.withUnsafeBufferPointer {
            grpc__reflection__v1alpha__server_reflection_request__unpack(nil, $0.count, $0.baseAddress)
        }
        guard let request else { return nil }
        defer { grpc__reflection__v1alpha__server_reflection_request__free_unpacked(request, nil) }
        let r = request.pointee
        let query: ReflectionQuery
        switch r.message_request_case {
        case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
            query = .fileByFilename(ProtoC.string(r.file_by_filename))
        case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
            query = .fileContainingSymbol(ProtoC.string(r.file_containing_symbol))
        case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
            let e = r.file_containing_extension?.pointee
            query = .fileContainingExtension(type: ProtoC.string(e?.containing_type), number: e?.extension_number ?? 0)
        case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
            query = .allExtensionNumbersOfType(ProtoC.string(r.all_extension_numbers_of_type))
        case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
            query = .listServices
        default:
            return nil
        }

        var arena = CArena()
        defer { arena.free() }
        var response = Grpc__Reflection__V1alpha__ServerReflectionResponse()
        grpc__reflection__v1alpha__server_reflection_response__init(&response)
        response.valid_host = r.host
        response.original_request = request
        switch resolve(query) {
        case .files(let files):
            let body = arena.allocate(Grpc__Reflection__V1alpha__FileDescriptorResponse.self)
            grpc__reflection__v1alpha__file_descriptor_response__init(body)
            let list = arena.allocate(ProtobufCBinaryData.self, count: max(files.count, 1))
            for (i, file) in files.enumerated() { list[i] = arena.binary(file) }
            body.pointee.n_file_descriptor_proto = files.count
            body.pointee.file_descriptor_proto = list
            response.message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE
            response.file_descriptor_response = body
        case .services(let names):
            let body = arena.allocate(Grpc__Reflection__V1alpha__ListServiceResponse.self)
            grpc__reflection__v1alpha__list_service_response__init(body)
            let list = arena.allocate(UnsafeMutablePointer<Grpc__Reflection__V1alpha__ServiceResponse>?.self, count: max(names.count, 1))
            for (i, name) in names.enumerated() {
                let service = arena.allocate(Grpc__Reflection__V1alpha__ServiceResponse.self)
                grpc__reflection__v1alpha__service_response__init(service)
                service.pointee.name = arena.string(name)
                list[i] = service
            }
            body.pointee.n_service = names.count
            body.pointee.service = list
            response.message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE
            response.list_services_response = body
        case .extensionNumbers(let baseType):
            let body = arena.allocate(Grpc__Reflection__V1alpha__ExtensionNumberResponse.self)
            grpc__reflection__v1alpha__extension_number_response__init(body)
            body.pointee.base_type_name = arena.string(baseType)
            response.message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE
            response.all_extension_numbers_response = body
        case .error(let code, let message):
            let body = arena.allocate(Grpc__Reflection__V1alpha__ErrorResponse.self)
            grpc__reflection__v1alpha__error_response__init(body)
            body.pointee.error_code = code
            body.pointee.error_message = arena.string(message)
            response.message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE
            response.error_response = body
        }
        return try ProtoC.pack(size: grpc__reflection__v1alpha__server_reflection_response__get_packed_size(&response)) {
            grpc__reflection__v1alpha__server_reflection_response__pack(&response, $0)
        }
    }
}
