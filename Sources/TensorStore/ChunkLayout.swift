import Foundation

/// Moves the elements a chunk covers between a whole-array C-order buffer and a
/// full-chunk C-order buffer, one contiguous row (last dimension) at a time.
enum ChunkLayout {
    static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for d in stride(from: shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        return strides
    }

    /// Calls `body(arrayOffset, chunkOffset, rowElements)` for each row of the region,
    /// offsets counted in elements.
    static func forEachRow(
        arrayShape: [Int], chunkShape: [Int], origin: [Int], extent: [Int], _ body: (Int, Int, Int) -> Void
    ) {
        let rank = arrayShape.count
        if rank == 0 { body(0, 0, 1); return }
        if extent.contains(0) { return }
        let arrayStrides = strides(arrayShape)
        let chunkStrides = strides(chunkShape)
        let rowLength = extent[rank - 1]
        var index = [Int](repeating: 0, count: rank)  // position inside the region; last dim stays 0
        var arrayOffset = zip(origin, arrayStrides).reduce(0) { $0 + $1.0 * $1.1 }
        var chunkOffset = 0
        while true {
            body(arrayOffset, chunkOffset, rowLength)
            // Odometer over all dimensions but the last.
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                arrayOffset += arrayStrides[d]
                chunkOffset += chunkStrides[d]
                if index[d] < extent[d] { break }
                arrayOffset -= arrayStrides[d] * extent[d]
                chunkOffset -= chunkStrides[d] * extent[d]
                index[d] = 0
                d -= 1
            }
            if d < 0 { return }
        }
    }

    /// Fills `buffer` with copies of one element's bytes; doubling copies keep this
    /// memcpy-speed even for non-zero fill values.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer, with element: [UInt8]) {
        guard buffer.count > 0 else { return }
        if element.allSatisfy({ $0 == 0 }) {
            memset(buffer.baseAddress!, 0, buffer.count)
            return
        }
        let first = min(element.count, buffer.count)
        element.withUnsafeBytes { _ = memcpy(buffer.baseAddress!, $0.baseAddress!, first) }
        var filled = first
        while filled < buffer.count {
            let n = min(filled, buffer.count - filled)
            memcpy(buffer.baseAddress! + filled, buffer.baseAddress!, n)
            filled += n
        }
    }
}
