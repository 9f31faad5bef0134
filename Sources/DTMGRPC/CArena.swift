internal import CProtobufC
import Glibc

/// Memory for one message being packed: everything allocated here is freed together.
struct CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    mutating func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!  // nil only when out of memory, as for any Swift allocation
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    mutating func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!  // nil only when out of memory
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }

    mutating func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocate(UInt8.self, count: bytes.count)
        p.initialize(from: bytes, count: bytes.count)
        return ProtobufCBinaryData(len: bytes.count, data: p)
    }

    func free() { for b in blocks { Glibc.free(b) } }
}
