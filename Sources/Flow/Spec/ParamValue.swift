import NICBasics

/// A JSON-shaped value: what a parameter holds once read from YAML and checked against its declared
/// type. The same type as zarr's attributes (`JSONValue` in NICBasics); its `canonicalJSON` is what
/// cache keys hash.
public typealias ParamValue = JSONValue
