import DTMCore
import FoundationEssentials

/// A transaction's options as DTM stores and shows them (the `options` column and the `options` field of `query`):
/// Go's `omitempty` (empty values left out, `concurrent` always present), `branch_headers` sorted by name.
/// Written by hand: JSONEncoder was over 2% of a saga's CPU, once per insert, for these few fields. Reading goes
/// through `TransOptions`' Decodable conformance (a test checks that both agree).
public enum TransOptionsJSON {
    public static func encode(_ o: TransOptions) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        func field(_ key: String, _ value: String) {
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            JSONText.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            out += value.utf8
        }
        if o.waitResult { field("wait_result", "true") }
        if o.timeoutToFail != 0 { field("timeout_to_fail", String(o.timeoutToFail)) }
        if o.requestTimeout != 0 { field("request_timeout", String(o.requestTimeout)) }
        if o.retryInterval != 0 { field("retry_interval", String(o.retryInterval)) }
        if !o.branchHeaders.isEmpty {
            let pairs = o.branchHeaders.sorted { $0.key < $1.key }.map { JSONText.quoted($0.key) + ":" + JSONText.quoted($0.value) }
            field("branch_headers", "{" + pairs.joined(separator: ",") + "}")
        }
        field("concurrent", o.concurrent ? "true" : "false")
        if o.retryLimit != 0 { field("retry_limit", String(o.retryLimit)) }
        if o.retryCount != 0 { field("retry_count", String(o.retryCount)) }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The options of a stored row; text that is empty or not valid JSON reads as the defaults (a row written by
    /// another program must not stop its transaction).
    public static func decode(_ text: String) -> TransOptions {
        guard !text.isEmpty, let options = try? JSONDecoder().decode(TransOptions.self, from: Data(text.utf8)) else {
            return TransOptions()
        }
        return options
    }
}
