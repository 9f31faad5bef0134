import DTMCore
import JSONSupport
import FoundationEssentials

/// Builds JSON bytes directly: DTM's response shapes (omitted empty keys, `[]` never null) without building
/// dictionaries per request.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    private var needsComma: [Bool] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func beginObject() { separator(); bytes.append(UInt8(ascii: "{")); needsComma.append(false) }
    mutating func endObject() { bytes.append(UInt8(ascii: "}")); needsComma.removeLast() }
    mutating func beginArray() { separator(); bytes.append(UInt8(ascii: "[")); needsComma.append(false) }
    mutating func endArray() { bytes.append(UInt8(ascii: "]")); needsComma.removeLast() }

    mutating func key(_ k: String) {
        separator()
        appendString(k)
        bytes.append(UInt8(ascii: ":"))
        needsComma[needsComma.count - 1] = false
    }

    mutating func string(_ s: String) { separator(); appendString(s) }
    mutating func int(_ v: Int64) { separator(); bytes.append(contentsOf: String(v).utf8) }
    mutating func bool(_ v: Bool) { separator(); bytes.append(contentsOf: (v ? "true" : "false").utf8) }
    mutating func null() { separator(); bytes.append(contentsOf: "null".utf8) }

    mutating func field(_ k: String, _ v: String) { key(k); string(v) }
    mutating func field(_ k: String, _ v: Int64) { key(k); int(v) }
    mutating func field(_ k: String, _ v: Bool) { key(k); bool(v) }
    mutating func fieldIfNotEmpty(_ k: String, _ v: String) { if !v.isEmpty { field(k, v) } }
    /// A value that is JSON text already.
    mutating func field(_ k: String, json: String) {
        key(k)
        separator()
        bytes.append(contentsOf: json.utf8)
    }
    mutating func field(_ k: String, time t: Timestamp?) {
        key(k)
        if let t { string(RFC3339.format(t)) } else { null() }
    }
    mutating func fieldIfSet(_ k: String, time t: Timestamp?) { if let t { field(k, time: t) } }

    private mutating func separator() {
        guard let last = needsComma.last else { return }
        if last { bytes.append(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
    }

    private mutating func appendString(_ s: String) {
        JSONText.appendQuoted(s, to: &bytes)
    }
}

/// DTM's JSON shapes of stored records (spec §2.1, §2.2, §2.7).
extension JSONWriter {
    /// `revealSecrets: false` shows `branch_headers` names with `***` as every value.
    mutating func transaction(_ t: GlobalTransaction, revealSecrets: Bool = false) {
        beginObject()
        field("id", t.id)
        field("create_time", time: t.createTime)
        field("update_time", time: t.updateTime)
        field("gid", t.gid)
        field("trans_type", t.transType.rawValue)
        field("status", t.status.rawValue)
        fieldIfNotEmpty("query_prepared", t.queryPrepared)
        fieldIfNotEmpty("protocol", t.transProtocol)
        fieldIfSet("finish_time", time: t.finishTime)
        fieldIfSet("rollback_time", time: t.rollbackTime)
        var options = t.options
        if !revealSecrets { options.branchHeaders = options.branchHeaders.mapValues { _ in "***" } }
        field("options", TransOptionsJSON.encode(options))
        fieldIfNotEmpty("custom_data", t.customData)
        if t.nextCronInterval != 0 { field("next_cron_interval", t.nextCronInterval) }
        fieldIfSet("next_cron_time", time: t.nextCronTime)
        fieldIfNotEmpty("owner", t.owner)
        fieldIfNotEmpty("ext_data", t.extData)
        fieldIfNotEmpty("result", t.result)
        fieldIfNotEmpty("rollback_reason", t.rollbackReason)
        // Option keys at top level, as DTM's TransGlobal embeds TransOptions.
        TransOptionsJSON.forEachField(t.options, embedded: true) { field($0, json: $1) }
        endObject()
    }

    mutating func branch(_ b: Branch) {
        beginObject()
        field("id", b.id)
        field("create_time", time: b.createTime)
        field("update_time", time: b.updateTime)
        field("gid", b.gid)
        field("url", b.url)
        fieldIfNotEmpty("bin_data", Data(b.binData).base64EncodedString())
        field("branch_id", b.branchID)
        field("op", b.op)
        field("status", b.status.rawValue)
        fieldIfSet("finish_time", time: b.finishTime)
        fieldIfSet("rollback_time", time: b.rollbackTime)
        endObject()
    }

    mutating func branches(_ list: [Branch]) {
        beginArray()
        for b in list { branch(b) }
        endArray()
    }

    mutating func kv(_ r: KVRecord) {
        beginObject()
        field("id", r.id)
        field("create_time", time: r.createTime)
        field("update_time", time: r.updateTime)
        field("cat", r.cat)
        field("k", r.key)
        field("v", r.value)
        field("version", r.version)
        endObject()
    }
}
