/// One subscriber of a topic, as DTM stores it in the KV value: `{"url":"…","remark":"…"}`.
package struct TopicSubscriber: Sendable, Equatable, Codable {
    package var url: String
    package var remark: String
}

/// Topics (spec §10) live in the KV store, category `topics`. They are read from the store whenever a msg is
/// saved, so a subscription is visible at once and a deleted topic is gone at once (DTM caches them for up to
/// ConfigUpdateInterval and never forgets a deleted one until restart).
extension Coordinator {
    static let topicsCategory = "topics"

    package func subscribe(topic: String, url: String, remark: String) async throws {
        if topic.isEmpty { throw DTMError.other("empty topic") }
        if url.isEmpty { throw DTMError.other("empty url") }
        try validator.checkSubscription(topic: topic, url: url, remark: remark)
        let at = now
        guard let record = try await store.findKV(cat: Self.topicsCategory, key: topic).first else {
            let value = try context.coding.encode([TopicSubscriber(url: url, remark: remark)])
            try await store.createKV(KVRecord(cat: Self.topicsCategory, key: topic, value: value, createTime: at))
            return
        }
        var subscribers = try decodeSubscribers(record)
        if subscribers.contains(where: { $0.url == url }) { throw DTMError.other("this url exists") }
        if subscribers.count >= validator.limits.maxSubscribersPerTopic {
            throw DTMError.invalidArgument("topic \(topic) has \(subscribers.count) subscribers; the limit is \(validator.limits.maxSubscribersPerTopic)")
        }
        subscribers.append(TopicSubscriber(url: url, remark: remark))
        var updated = record
        updated.value = try context.coding.encode(subscribers)
        try await store.updateKV(updated, now: at)
    }

    package func unsubscribe(topic: String, url: String) async throws {
        if topic.isEmpty { throw DTMError.other("empty topic") }
        if url.isEmpty { throw DTMError.other("empty url") }
        guard let record = try await store.findKV(cat: Self.topicsCategory, key: topic).first else {
            throw DTMError.other("no such a topic")
        }
        var subscribers = try decodeSubscribers(record)
        if subscribers.isEmpty { throw DTMError.other("this topic is empty") }
        guard let i = subscribers.firstIndex(where: { $0.url == url }) else { throw DTMError.other("no such an url ") }
        subscribers.remove(at: i)
        var updated = record
        updated.value = try context.coding.encode(subscribers)
        try await store.updateKV(updated, now: now)
    }

    /// A missing topic is a plain error (`storage: NotFound`), answered 500 / UNKNOWN like every topic error.
    package func deleteTopic(_ topic: String) async throws {
        do {
            try await store.deleteKV(cat: Self.topicsCategory, key: topic)
        } catch DTMError.storageNotFound {
            throw DTMError.other("storage: NotFound")
        }
    }

    package func scanKV(cat: String, position: Int64?, limit: Int) async throws -> (records: [KVRecord], nextPosition: Int64?) {
        try await store.scanKV(cat: cat, position: position, limit: limit)
    }

    /// A category is required: without one every record of every category would be read at once.
    package func queryKV(cat: String, key: String) async throws -> [KVRecord] {
        if cat.isEmpty { throw DTMError.invalidArgument("cat is required (use scanKV to page through a category)") }
        return try await store.findKV(cat: cat, key: key)
    }

    /// The branch URLs of each msg step: the step's action, or every subscriber of a `topic://name` action.
    func msgURLs(_ request: TransactionRequest) async throws -> [[String]] {
        var out: [[String]] = []
        for step in request.steps {
            guard step.action.hasPrefix("topic://") else {
                out.append([step.action])
                continue
            }
            let topic = String(step.action.dropFirst("topic://".count))
            guard let record = try await store.findKV(cat: Self.topicsCategory, key: topic).first,
                case let urls = try decodeSubscribers(record).map(\.url), !urls.isEmpty
            else {
                throw DTMError.other("topic not found")
            }
            out.append(urls)
        }
        return out
    }

    private func decodeSubscribers(_ record: KVRecord) throws -> [TopicSubscriber] {
        do {
            return try context.coding.decode([TopicSubscriber].self, from: record.value)
        } catch {
            throw DTMError.other("topic \(record.key) has a malformed subscriber list: \(error)")
        }
    }
}
