/// The table names the store uses: DTM's `trans_global` and `trans_branch_op` by default, or what
/// `Store.TransGlobalTable` / `Store.TransBranchOpTable` name (optionally schema-qualified). `kv` lives beside the
/// global table. Names are checked to be plain identifiers, since they are written into SQL text.
package struct PostgresTables: Sendable, Equatable {
    package let global: String
    package let branch: String
    package let kv: String

    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
    }

    /// DTM's names.
    package static let dtm = PostgresTables(checkedGlobal: "trans_global", branch: "trans_branch_op")

    package init(global: String = "trans_global", branch: String = "trans_branch_op") throws {
        for (key, name) in [("TransGlobalTable", global), ("TransBranchOpTable", branch)] where !Self.isQualifiedIdentifier(name) {
            throw Invalid(
                description:
                    "Store.\(key): '\(name.prefix(64))' is not a table name (letters, digits and _, optionally schema.table, at most 63 bytes each)")
        }
        self.init(checkedGlobal: global, branch: branch)
    }

    private init(checkedGlobal global: String, branch: String) {
        self.global = global.lowercased()
        self.branch = branch.lowercased()
        kv = Self.besideGlobal(self.global, "kv")
    }

    /// `name` in the global table's schema (unqualified if the global table is).
    static func besideGlobal(_ global: String, _ name: String) -> String {
        let parts = global.split(separator: ".")
        return parts.count == 2 ? "\(parts[0]).\(name)" : name
    }

    /// The last part of a possibly qualified name: indexes and sequences are named after it.
    static func bareName(_ table: String) -> String { String(table.split(separator: ".").last ?? Substring(table)) }

    /// A schema name (`Store.Schema`): one plain identifier.
    package static func isSchemaName(_ s: String) -> Bool { !s.contains(".") && isQualifiedIdentifier(s) }

    static func isQualifiedIdentifier(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return false }
        return parts.allSatisfy { part in
            guard let first = part.utf8.first, part.utf8.count <= 63 else { return false }
            let isLetter = { (c: UInt8) in (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x5f }
            return isLetter(first) && part.utf8.allSatisfy { isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) }
        }
    }
}
