/// A write that can share one statement with writes of the same kind on other transactions: the writer turns a
/// batch's saves into one multi-row INSERT of their transactions and one of their branch rows, so that a commit of
/// many sagas costs a few round trips instead of two per saga.
struct MySQLMergeable: Sendable {
    enum Kind: Int, CaseIterable, Sendable {
        case saveNew
    }

    let kind: Kind
    let gid: String
    /// The transaction's row (`MySQLSQL.globalInsertColumns`).
    let row: [MySQLValue]
    /// Its branch rows (`MySQLSQL.branchInsertColumns`), in order.
    let children: [[MySQLValue]]
}

enum MySQLMerged {
    /// Most rows in one statement.
    static let maxRows = 64

    /// `items` in slices whose sizes are powers of two (at most `maxRows`), largest first, so that a handful of
    /// prepared statements serve every count.
    static func slices<T>(_ items: [T]) -> [ArraySlice<T>] {
        var out: [ArraySlice<T>] = []
        var start = 0
        var size = maxRows
        while start < items.count {
            while size > items.count - start { size /= 2 }
            out.append(items[start..<(start + size)])
            start += size
        }
        return out
    }

    /// Runs the writes of one kind as shared statements. Any error leaves changes behind in the transaction: the
    /// writer rolls the batch back and runs these writes one by one.
    static func run(_ kind: MySQLMergeable.Kind, _ writes: [MySQLMergeable], _ sql: MySQLSQL, on c: MySQLConnection) throws {
        switch kind {
        case .saveNew:
            for slice in slices(writes) { _ = try c.run(sql.insertGlobals(slice.count), slice.flatMap(\.row)) }
            for slice in slices(writes.flatMap(\.children)) {
                _ = try c.run(sql.insertBranches(slice.count, keepExisting: true), slice.flatMap { $0 })
            }
        }
    }
}
