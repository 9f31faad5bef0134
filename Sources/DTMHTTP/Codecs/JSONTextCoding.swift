import DTMCore
import FoundationEssentials

/// The core's `TextCoding` with JSON: the JSON texts DTM keeps in string columns.
package struct JSONTextCoding: TextCoding {
    package init() {}
    package func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
    package func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }
}

/// Turns a `DecodingError` into one sentence that names the field, e.g. `payloads[1]: expected a string`.
func describe(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "invalid JSON: \(error)" }
    func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for key in keys {
            if let i = key.intValue { out += "[\(i)]" } else { out += out.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
        return out.isEmpty ? "body" : out
    }
    switch error {
    case .typeMismatch(let type, let c):
        return "\(path(c.codingPath)): expected \(typeName(type))"
    case .valueNotFound(let type, let c):
        return "\(path(c.codingPath)): expected \(typeName(type)), found null"
    case .keyNotFound(let key, let c):
        return "\(path(c.codingPath + [key])): missing"
    case .dataCorrupted(let c):
        if c.codingPath.isEmpty { return "the body is not valid JSON" }
        return "\(path(c.codingPath)): \(c.debugDescription)"
    @unknown default:
        return "invalid JSON"
    }
}

private func typeName(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    case is Int64.Type, is Int.Type: return "an integer"
    default:
        let name = "\(type)"
        if name.hasPrefix("Array") { return "an array" }
        if name.hasPrefix("Dictionary") { return "an object" }
        return "a JSON object"
    }
}
