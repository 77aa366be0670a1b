/// A buffer pointer handed to parallel workers that each touch their own, disjoint part of it
/// (chunks of an array, shares of a batch). Unsafe by nature: the caller guarantees the disjointness,
/// and that the memory outlives the workers.
public struct DisjointAccess<Pointer>: @unchecked Sendable {  // workers never touch the same bytes
    public let pointer: Pointer
    public init(_ pointer: Pointer) { self.pointer = pointer }
}
