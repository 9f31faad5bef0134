package import DTMCore
import FoundationEssentials

/// A transaction's options as DTM stores and shows them (the `options` column and the `options` field of `query`):
/// Go's `omitempty` (empty values left out, `concurrent` always present), `branch_headers` sorted by name.
/// Written by hand: JSONEncoder was over 2% of a saga's CPU, once per insert, for these few fields. Reading goes
/// through `TransOptions`' Decodable conformance (a test checks that both agree).
package enum TransOptionsJSON {
    /// Calls `body` with each option DTM writes, as its key and JSON value, in DTM's order, Go's `omitempty` applied
    /// (`concurrent` always present). `embedded`: the keys DTM shows at the top level of a transaction, where its
    /// `TransGlobal` embeds the options (no `branch_headers`, no `retry_count`). The one list of the options' JSON
    /// shape: the `options` column and the API's transaction objects are both written from it.
    package static func forEachField(_ o: TransOptions, embedded: Bool = false, _ body: (String, String) -> Void) {
        if o.waitResult { body("wait_result", "true") }
        if o.timeoutToFail != 0 { body("timeout_to_fail", String(o.timeoutToFail)) }
        if o.requestTimeout != 0 { body("request_timeout", String(o.requestTimeout)) }
        if o.retryInterval != 0 { body("retry_interval", String(o.retryInterval)) }
        if !embedded && !o.branchHeaders.isEmpty {
            let pairs = o.branchHeaders.sorted { $0.key < $1.key }.map { JSONText.quoted($0.key) + ":" + JSONText.quoted($0.value) }
            body("branch_headers", "{" + pairs.joined(separator: ",") + "}")
        }
        body("concurrent", o.concurrent ? "true" : "false")
        if o.retryLimit != 0 { body("retry_limit", String(o.retryLimit)) }
        if !embedded && o.retryCount != 0 { body("retry_count", String(o.retryCount)) }
    }

    /// The `options` column's text.
    package static func encode(_ o: TransOptions) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        forEachField(o) { key, value in
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            JSONText.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            out += value.utf8
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The options of a stored row; text that is empty or not valid JSON reads as the defaults (a row written by
    /// another program must not stop its transaction).
    package static func decode(_ text: String) -> TransOptions {
        guard !text.isEmpty, let options = try? JSONDecoder().decode(TransOptions.self, from: Data(text.utf8)) else {
            return TransOptions()
        }
        return options
    }
}
