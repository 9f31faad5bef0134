/// New gids as DTM makes them (spec §4.2): a random 128-bit UUIDv4 written in base 57, 22 characters.
package enum GidGenerator {
    static let alphabet = Array("23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)

    package static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        var hi = rng.next() as UInt64
        var lo = rng.next() as UInt64
        hi = (hi & ~0xF000) | 0x4000  // version 4
        lo = (lo & ~(0xC000_0000_0000_0000)) | 0x8000_0000_0000_0000  // RFC 4122 variant
        // Long division of the 128-bit value by 57, in 32-bit limbs.
        var limbs: [UInt64] = [hi >> 32, hi & 0xFFFF_FFFF, lo >> 32, lo & 0xFFFF_FFFF]
        var out = [UInt8](repeating: alphabet[0], count: 22)
        for position in stride(from: 21, through: 0, by: -1) {
            var remainder: UInt64 = 0
            for i in 0..<limbs.count {
                let value = (remainder << 32) | limbs[i]
                limbs[i] = value / 57
                remainder = value % 57
            }
            out[position] = alphabet[Int(remainder)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A random lease owner id (hex).
    package static func owner() -> String {
        var rng = SystemRandomNumberGenerator()
        let v = rng.next() as UInt64
        return String(v, radix: 16)
    }
}
