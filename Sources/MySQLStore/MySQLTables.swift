/// The table names the store uses: DTM's `trans_global` and `trans_branch_op` by default, or what
/// `Store.TransGlobalTable` / `Store.TransBranchOpTable` name (optionally `database.table`). `kv` and our schema
/// version table live beside the global table. Names are checked to be plain identifiers and written quoted, since
/// they are part of SQL text.
package struct MySQLTables: Sendable, Equatable {
    /// Quoted for SQL text: `` `trans_global` `` or `` `dtm`.`trans_global` ``.
    let global: String
    let branch: String
    let kv: String
    let version: String
    /// The global table's own name, which the indexes we add are named after.
    let globalBare: String

    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
    }

    /// DTM's names.
    package static let dtm = MySQLTables(checkedGlobal: "trans_global", branch: "trans_branch_op")

    package init(global: String = "trans_global", branch: String = "trans_branch_op") throws {
        for (key, name) in [("TransGlobalTable", global), ("TransBranchOpTable", branch)] where !Self.isQualifiedIdentifier(name) {
            throw Invalid(
                description:
                    "Store.\(key): '\(name.prefix(64))' is not a table name (letters, digits and _, optionally database.table, at most 64 bytes each)")
        }
        self.init(checkedGlobal: global, branch: branch)
    }

    private init(checkedGlobal g: String, branch b: String) {
        global = Self.quoted(g)
        branch = Self.quoted(b)
        let parts = g.split(separator: ".")
        let prefix = parts.count == 2 ? "\(parts[0])." : ""
        kv = Self.quoted(prefix + "kv")
        version = Self.quoted(prefix + "swift_dtm_schema")
        globalBare = String(parts.last ?? Substring(g))
    }

    private static func quoted(_ name: String) -> String {
        name.split(separator: ".").map { "`\($0)`" }.joined(separator: ".")
    }

    /// A database name (`Store.Db`): one plain identifier.
    package static func isDatabaseName(_ s: String) -> Bool { !s.contains(".") && isQualifiedIdentifier(s) }

    static func isQualifiedIdentifier(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return false }
        return parts.allSatisfy { part in
            guard let first = part.utf8.first, part.utf8.count <= 64 else { return false }
            let isLetter = { (c: UInt8) in (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x5f }
            return isLetter(first) && part.utf8.allSatisfy { isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) }
        }
    }
}
