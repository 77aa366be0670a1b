import Foundation
import Slides

/// Per-cell maps of a compressed slide (attention weights) as pictures a pathologist can read: each
/// grid cell a square of a few pixels, coloured from blue (least) through yellow to red (most, relative
/// to the slide's largest value), blended over the slide's thumbnail at the same scale when given.
enum AttentionMaps {
    /// Pixels per grid cell: the same as the compressor's false-colour preview, so they sit side by side.
    static func scale(rows: Int, columns: Int) -> Int { max(1, min(8, 320 / max(1, max(rows, columns)))) }

    static func image(_ values: [Float], rows: Int, columns: Int, tissue: [Int], thumbnail: RGBImage?) -> RGBImage {
        let scale = scale(rows: rows, columns: columns)
        var image = RGBImage(width: columns * scale, height: rows * scale, fill: 255)
        if let thumbnail {
            // The thumbnail covers the slide; the grid covers its whole patches from the top-left corner.
            for y in 0..<image.height {
                for x in 0..<image.width {
                    let sx = min(thumbnail.width - 1, x), sy = min(thumbnail.height - 1, y)
                    for ch in 0..<3 { image.pixels[(y * image.width + x) * 3 + ch] = thumbnail.pixels[(sy * thumbnail.width + sx) * 3 + ch] }
                }
            }
        }
        let top = tissue.map { values[$0] }.max() ?? 0
        let opacity: Float = thumbnail == nil ? 1 : 0.6
        for cell in tissue {
            let t = top > 0 ? values[cell] / top : 0
            let colour = colourMap(t)
            let row = cell / columns, column = cell % columns
            for dy in 0..<scale {
                for dx in 0..<scale {
                    let o = ((row * scale + dy) * image.width + column * scale + dx) * 3
                    for ch in 0..<3 {
                        let under = Float(image.pixels[o + ch])
                        image.pixels[o + ch] = UInt8(max(0, min(255, (under * (1 - opacity) + colour[ch] * opacity).rounded())))
                    }
                }
            }
        }
        return image
    }

    /// A diverging blue–yellow–red map (ColorBrewer RdYlBu, reversed) at t ∈ [0, 1].
    static func colourMap(_ t: Float) -> [Float] {
        let stops: [[Float]] = [[49, 54, 149], [116, 173, 209], [255, 255, 191], [244, 109, 67], [165, 0, 38]]
        let x = max(0, min(1, t)) * Float(stops.count - 1)
        let i = min(stops.count - 2, Int(x)), f = x - Float(i)
        return (0..<3).map { stops[i][$0] * (1 - f) + stops[i + 1][$0] * f }
    }

    /// The slide read at the map's scale (one grid cell = `scale` pixels), or nil when it cannot be
    /// opened any more (moved since it was compressed): the map is then drawn on white.
    static func thumbnail(_ entry: SlideEntry, cellMicrons: Double, rows: Int, columns: Int) -> RGBImage? {
        guard let slide = try? entry.open() else { return nil }
        let mpp = cellMicrons / Double(scale(rows: rows, columns: columns))
        return try? slide.readWhole(mpp: max(mpp, slide.mpp))
    }
}
