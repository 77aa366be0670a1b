import Foundation

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (R, G, B): the layout of numpy's
/// `uint8[height, width, 3]`, which is how patches are stored in zarr too.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        // invariant: images come from readers and transforms that allocate width × height × 3 bytes themselves.
        precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)×\(height)×3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A blank image of one colour (white by default: the colour of glass).
    public init(width: Int, height: Int, fill: UInt8 = 255) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: fill, count: width * height * 3))
    }

    @inlinable public func pixel(_ x: Int, _ y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// A sub-rectangle (must lie inside the image).
    public func crop(x: Int, y: Int, width w: Int, height h: Int) -> RGBImage {
        // invariant: callers crop cells out of a region they read as whole cells (TileGrid) or out of fixed-size sources (bench).
        precondition(x >= 0 && y >= 0 && x + w <= width && y + h <= height, "crop outside the image")
        var out = [UInt8](repeating: 0, count: w * h * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for row in 0..<h {
                    let s = ((y + row) * width + x) * 3
                    for k in 0..<(w * 3) { dst[row * w * 3 + k] = src[s + k] }
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }

    /// Copies `other` into this image at (x, y), clipping at the edges.
    public mutating func paste(_ other: RGBImage, x: Int, y: Int) {
        for row in 0..<other.height {
            let ty = y + row
            guard ty >= 0 && ty < height else { continue }
            for col in 0..<other.width {
                let tx = x + col
                guard tx >= 0 && tx < width else { continue }
                let s = (row * other.width + col) * 3, d = (ty * width + tx) * 3
                pixels[d] = other.pixels[s]; pixels[d + 1] = other.pixels[s + 1]; pixels[d + 2] = other.pixels[s + 2]
            }
        }
    }

    /// Mean of all channels of all pixels (0...255): the public NIC code's background test (≥ 245).
    public var meanIntensity: Double {
        guard !pixels.isEmpty else { return 0 }
        var sum = 0
        for v in pixels { sum += Int(v) }
        return Double(sum) / Double(pixels.count)
    }
}
