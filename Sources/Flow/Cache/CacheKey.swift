import Foundation

/// What a cache entry's key is made of: the node's type and implementation version, its params by
/// content (files as `sha256:…`, references as their parsed YAML), the keys of the outputs it reads
/// (a Merkle DAG) and, for one item of a node's work, the item. The key is the SHA-256 of this
/// document in canonical JSON, so two entries share a key exactly when these agree.
public struct CacheKey: Sendable, Equatable {
    public var type: String
    public var version: Int
    public var params: [String: ParamValue]
    /// Input port → "<upstream key>/<port>".
    public var inputs: [String: String]
    /// The item's identity (say, a slide's content hash) for a per-item entry; nil for a node's output.
    public var item: String?

    public init(type: String, version: Int, params: [String: ParamValue], inputs: [String: String], item: String? = nil) {
        self.type = type
        self.version = version
        self.params = params
        self.inputs = inputs
        self.item = item
    }

    /// The key of one item of this node's work. The inputs the items come from (the collection) are
    /// left out, so adding a slide to a cohort leaves every other slide's item key as it was.
    public func item(_ identity: String, excludingInputs excluded: Set<String> = []) -> CacheKey {
        CacheKey(type: type, version: version, params: params, inputs: inputs.filter { !excluded.contains($0.key) }, item: identity)
    }

    /// A node output's document has no `item` field at all (not a null one): keys from before items
    /// existed stay valid.
    var document: ParamValue {
        var fields: [String: ParamValue] = [
            "type": .string(type),
            "version": .int(version),
            "params": .map(params),
            "inputs": .map(inputs.mapValues { .string($0) }),
        ]
        if let item { fields["item"] = .string(item) }
        return .map(fields)
    }

    /// The 64 hex digits that name the entry in the cache.
    public var hex: String { Hashing.sha256Hex(document.canonicalJSON) }
}
