import Foundation

/// Resampling used when a slide has no level at the requested µm/px.
///
/// Shrinking (scale > 1 source pixels per output pixel) uses exact area averaging (a box filter over
/// each output pixel's footprint, fractional overlaps weighted): it is what a microscope with a
/// coarser sensor would see and never aliases nuclei into noise. Enlarging (scale < 1) uses bilinear
/// interpolation between pixel centres, edges clamped.
public enum Resample {
    /// Samples `source` on an output grid of `width` × `height` pixels whose pixel (i, j) covers the
    /// source rectangle [originX + i·scaleX, originX + (i+1)·scaleX) × [same in y].
    public static func resample(_ source: RGBImage, originX: Double, originY: Double, scaleX: Double, scaleY: Double,
                                width: Int, height: Int) -> RGBImage {
        let wx = weights(count: width, origin: originX, scale: scaleX, limit: source.width)
        let wy = weights(count: height, origin: originY, scale: scaleY, limit: source.height)
        // Horizontal pass into floats (only the source rows the vertical pass needs), then vertical.
        let rowLow = wy.map { $0.first?.0 ?? 0 }.min() ?? 0
        let rowHigh = wy.map { $0.last?.0 ?? 0 }.max() ?? 0
        let rows = rowHigh - rowLow + 1
        var horizontal = [Float](repeating: 0, count: rows * width * 3)
        source.pixels.withUnsafeBufferPointer { src in
            horizontal.withUnsafeMutableBufferPointer { h in
                for r in 0..<rows {
                    let srcRow = (rowLow + r) * source.width * 3
                    let outRow = r * width * 3
                    for i in 0..<width {
                        var a: Float = 0, b: Float = 0, c: Float = 0
                        for (x, w) in wx[i] {
                            let s = srcRow + x * 3
                            a += w * Float(src[s]); b += w * Float(src[s + 1]); c += w * Float(src[s + 2])
                        }
                        h[outRow + i * 3] = a; h[outRow + i * 3 + 1] = b; h[outRow + i * 3 + 2] = c
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        horizontal.withUnsafeBufferPointer { h in
            out.withUnsafeMutableBufferPointer { dst in
                for j in 0..<height {
                    for k in 0..<(width * 3) {
                        var v: Float = 0
                        for (y, w) in wy[j] { v += w * h[(y - rowLow) * width * 3 + k] }
                        dst[j * width * 3 + k] = UInt8(max(0, min(255, (v + 0.5).rounded(.down))))
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Per output index, the contributing source indices and normalised weights.
    static func weights(count: Int, origin: Double, scale: Double, limit: Int) -> [[(Int, Float)]] {
        var result: [[(Int, Float)]] = []
        result.reserveCapacity(count)
        for i in 0..<count {
            var taps: [(Int, Float)] = []
            if scale > 1 {
                let lo = origin + Double(i) * scale, hi = lo + scale
                var x = Int(lo.rounded(.down))
                while Double(x) < hi {
                    let overlap = min(hi, Double(x + 1)) - max(lo, Double(x))
                    if overlap > 1e-9 { taps.append((min(max(x, 0), limit - 1), Float(overlap / scale))) }
                    x += 1
                }
            } else {
                let centre = origin + (Double(i) + 0.5) * scale - 0.5
                let x0 = Int(centre.rounded(.down))
                let f = centre - Double(x0)
                let a = min(max(x0, 0), limit - 1), b = min(max(x0 + 1, 0), limit - 1)
                if a == b { taps = [(a, 1)] } else { taps = [(a, Float(1 - f)), (b, Float(f))] }
            }
            // Merge taps that clamping mapped onto the same index, keeping indices ascending.
            var merged: [(Int, Float)] = []
            for t in taps.sorted(by: { $0.0 < $1.0 }) {
                if let last = merged.last, last.0 == t.0 { merged[merged.count - 1].1 += t.1 } else { merged.append(t) }
            }
            result.append(merged)
        }
        return result
    }

    /// Halves an image (2×2 box average; a trailing odd row/column is averaged with itself).
    public static func halve(_ image: RGBImage) -> RGBImage {
        let w = (image.width + 1) / 2, h = (image.height + 1) / 2
        var out = [UInt8](repeating: 0, count: w * h * 3)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    let y0 = 2 * y, y1 = min(2 * y + 1, image.height - 1)
                    for x in 0..<w {
                        let x0 = 2 * x, x1 = min(2 * x + 1, image.width - 1)
                        for c in 0..<3 {
                            let s = Int(src[(y0 * image.width + x0) * 3 + c]) + Int(src[(y0 * image.width + x1) * 3 + c])
                                + Int(src[(y1 * image.width + x0) * 3 + c]) + Int(src[(y1 * image.width + x1) * 3 + c])
                            dst[(y * w + x) * 3 + c] = UInt8((s + 2) / 4)
                        }
                    }
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}
