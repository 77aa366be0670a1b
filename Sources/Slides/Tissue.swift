import Foundation

/// A binary tissue mask over a whole slide at a coarse resolution, with helpers to ask how much of any
/// level-0 rectangle is tissue.
public struct TissueMask: Sendable, Equatable {
    /// Mask size in pixels.
    public let width: Int
    public let height: Int
    /// Level-0 pixels per mask pixel, in x and y.
    public let scaleX: Double
    public let scaleY: Double
    /// 1 = tissue, 0 = background, row-major.
    public var values: [UInt8]

    public init(width: Int, height: Int, scaleX: Double, scaleY: Double, values: [UInt8]) {
        precondition(values.count == width * height)  // invariant: masks are built by the detector from an image of this size
        self.width = width
        self.height = height
        self.scaleX = scaleX
        self.scaleY = scaleY
        self.values = values
    }

    /// Fraction of the slide's area that is tissue.
    public var tissueFraction: Double {
        values.isEmpty ? 0 : Double(values.reduce(0) { $0 + Int($1) }) / Double(values.count)
    }

    /// Fraction of tissue in a level-0 rectangle: the mean of the mask pixels whose centres fall inside
    /// it, or the mask pixel under its centre when it is smaller than one mask pixel. Outside the slide
    /// counts as background.
    public func coverage(x: Double, y: Double, width w: Double, height h: Double) -> Double {
        let x0 = Int((x / scaleX - 0.5).rounded(.up)), x1 = Int(((x + w) / scaleX - 0.5).rounded(.up))
        let y0 = Int((y / scaleY - 0.5).rounded(.up)), y1 = Int(((y + h) / scaleY - 0.5).rounded(.up))
        if x1 <= x0 || y1 <= y0 {
            let cx = Int(((x + w / 2) / scaleX).rounded(.down)), cy = Int(((y + h / 2) / scaleY).rounded(.down))
            return cx >= 0 && cy >= 0 && cx < width && cy < height ? Double(values[cy * width + cx]) : 0
        }
        var sum = 0
        for my in y0..<y1 where my >= 0 && my < height {
            for mx in x0..<x1 where mx >= 0 && mx < width { sum += Int(values[my * width + mx]) }
        }
        return Double(sum) / Double((x1 - x0) * (y1 - y0))
    }

    /// The tissue fraction of every cell of a grid of `cellWidth` × `cellHeight` level-0 pixels starting
    /// at the slide's origin: `columns` × `rows` values, row-major (the grid of compressed slides).
    public func grid(cellWidth: Double, cellHeight: Double, columns: Int, rows: Int) -> [Double] {
        var out = [Double](repeating: 0, count: columns * rows)
        for r in 0..<rows {
            for c in 0..<columns {
                out[r * columns + c] = coverage(x: Double(c) * cellWidth, y: Double(r) * cellHeight, width: cellWidth, height: cellHeight)
            }
        }
        return out
    }

    /// The mask as a greyscale image (white = tissue), for inspection.
    public func image() -> RGBImage {
        RGBImage(width: width, height: height, pixels: values.flatMap { v -> [UInt8] in let g: UInt8 = v == 0 ? 0 : 255; return [g, g, g] })
    }
}

/// Finds tissue in H&E slides.
///
/// Method, on the slide read at `mpp` (default 4 µm/px, a 1:8 view of 0.5 µm/px):
/// 1. Per pixel, HSV saturation. Stained tissue is coloured; glass, glare and dust are grey or white.
/// 2. Ink is removed first: H&E pixels have red ≥ green (eosin and haematoxylin both absorb green
///    most), so green, teal and blue-green pen has green well above red; black ink and dirt are very
///    dark. Pure-blue ink resembling dense haematoxylin is not reliably separable by colour.
/// 3. Threshold: Otsu's on the saturation histogram of the remaining pixels, clamped to
///    [`minThreshold`, `maxThreshold`] so that a slide that is almost all tissue (Otsu would split stroma
///    from nuclei) or almost all glass (Otsu would split noise) still gets a sensible cut; pixels
///    brighter than `maxBrightness` (mean RGB) are glass whatever their saturation.
/// 4. Morphology with square structuring elements: closing (`closing` µm) to join fragmented stroma,
///    opening (`opening` µm) to drop specks, ink (grown by one pixel) removed again, then components smaller than `minTissueArea` µm² removed
///    and holes smaller than `maxHoleArea` µm² filled (lumina and cracks; a larger enclosed space is glass
///    that patches should not be drawn from).
public struct TissueDetector: Sendable {
    public var mpp: Double = 4
    public var minThreshold: Double = 0.05
    public var maxThreshold: Double = 0.15
    public var maxBrightness: Double = 235
    public var closing: Double = 8
    public var opening: Double = 16
    public var minTissueArea: Double = 25_000
    public var maxHoleArea: Double = 2_000

    public init() {}

    public func detect(_ slide: Slide) throws -> TissueMask {
        let image = try slide.readWhole(mpp: mpp)
        var mask = detect(image: image, mpp: mpp)
        // Exact level-0 size ratio (the thumbnail size was rounded).
        mask = TissueMask(width: mask.width, height: mask.height, scaleX: Double(slide.width) / Double(image.width),
                          scaleY: Double(slide.height) / Double(image.height), values: mask.values)
        return mask
    }

    /// The mask of an image at `mpp` µm/px (its scale fields are in image pixels, i.e. 1).
    public func detect(image: RGBImage, mpp: Double) -> TissueMask {
        let n = image.width * image.height
        var saturation = [Float](repeating: 0, count: n)
        var candidate = [Bool](repeating: false, count: n)
        var histogram = [Int](repeating: 0, count: 256)
        var ink = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            let r = Int(image.pixels[i * 3]), g = Int(image.pixels[i * 3 + 1]), b = Int(image.pixels[i * 3 + 2])
            let hi = max(r, g, b), lo = min(r, g, b)
            let isInk = g > r + 10 || hi < 40
            let bright = Double(r + g + b) / 3 > maxBrightness
            let s = hi == 0 ? 0 : Double(hi - lo) / Double(hi)
            saturation[i] = Float(s)
            if isInk { ink[i] = 1 } else if !bright { candidate[i] = true }
            if !isInk { histogram[min(255, Int(s * 255))] += 1 }
        }
        let threshold = min(max(TissueDetector.otsu(histogram) / 255, minThreshold), maxThreshold)
        var raw = [UInt8](repeating: 0, count: n)
        for i in 0..<n where candidate[i] && Double(saturation[i]) > threshold { raw[i] = 1 }

        let w = image.width, h = image.height
        let closingRadius = Int((closing / mpp / 2).rounded()), openingRadius = Int((opening / mpp / 2).rounded())
        var mask = raw
        mask = Morphology.dilate(mask, w, h, closingRadius)
        mask = Morphology.erode(mask, w, h, closingRadius)
        mask = Morphology.erode(mask, w, h, openingRadius)
        mask = Morphology.dilate(mask, w, h, openingRadius)
        // Ink again after the closing, which would bridge a pen line drawn across tissue; one pixel wider,
        // because ink blended with tissue at the line's edges looks like tissue.
        let inkZone = Morphology.dilate(ink, w, h, 1)
        for i in 0..<n where inkZone[i] == 1 { mask[i] = 0 }
        let pixelArea = mpp * mpp
        mask = Morphology.removeComponents(mask, w, h, value: 1, smallerThan: Int(minTissueArea / pixelArea), touchingBorder: true)
        mask = Morphology.removeComponents(mask, w, h, value: 0, smallerThan: Int(maxHoleArea / pixelArea), touchingBorder: false)
        return TissueMask(width: w, height: h, scaleX: 1, scaleY: 1, values: mask)
    }

    /// Otsu's threshold (bin index) of a histogram: maximises the between-class variance.
    static func otsu(_ histogram: [Int]) -> Double {
        let total = histogram.reduce(0, +)
        guard total > 0 else { return 0 }
        var sumAll = 0.0
        for (i, c) in histogram.enumerated() { sumAll += Double(i * c) }
        var sumBackground = 0.0, weightBackground = 0.0, best = 0.0, threshold = 0.0
        for (i, c) in histogram.enumerated() {
            weightBackground += Double(c)
            if weightBackground == 0 { continue }
            let weightForeground = Double(total) - weightBackground
            if weightForeground == 0 { break }
            sumBackground += Double(i * c)
            let meanB = sumBackground / weightBackground, meanF = (sumAll - sumBackground) / weightForeground
            let between = weightBackground * weightForeground * (meanB - meanF) * (meanB - meanF)
            if between > best { best = between; threshold = Double(i) + 0.5 }
        }
        return threshold
    }
}

enum Morphology {
    /// Running max (dilate) or min (erode) over a (2r+1)² square, separable; the image edge neither adds
    /// nor removes tissue.
    static func filter(_ m: [UInt8], _ w: Int, _ h: Int, _ r: Int, max useMax: Bool) -> [UInt8] {
        guard r > 0 else { return m }
        // Rows, then columns: the same 1-D pass over lines `lines` long, `step` apart within a line.
        let rows = runningExtreme(m, lines: h, length: w, lineStride: w, step: 1, r, max: useMax)
        return runningExtreme(rows, lines: w, length: h, lineStride: 1, step: w, r, max: useMax)
    }

    /// The max (or min) of each element's ±r neighbours along its line; masks hold 0 and 1 only, so
    /// the scan stops at the first value that decides.
    private static func runningExtreme(_ m: [UInt8], lines: Int, length: Int, lineStride: Int, step: Int, _ r: Int, max useMax: Bool) -> [UInt8] {
        var out = m
        for line in 0..<lines {
            let base = line * lineStride
            for i in 0..<length {
                var v: UInt8 = useMax ? 0 : 1
                for t in Swift.max(0, i - r)...Swift.min(length - 1, i + r) {
                    let s = m[base + t * step]
                    if useMax { if s > v { v = s; break } } else if s < v { v = s; break }
                }
                out[base + i * step] = v
            }
        }
        return out
    }

    static func dilate(_ m: [UInt8], _ w: Int, _ h: Int, _ r: Int) -> [UInt8] { filter(m, w, h, r, max: true) }
    static func erode(_ m: [UInt8], _ w: Int, _ h: Int, _ r: Int) -> [UInt8] { filter(m, w, h, r, max: false) }

    /// Flips 4-connected components of `value` with fewer than `smallerThan` pixels. With
    /// `touchingBorder` false, components touching the image edge are kept (they are not holes).
    static func removeComponents(_ m: [UInt8], _ w: Int, _ h: Int, value: UInt8, smallerThan limit: Int, touchingBorder: Bool) -> [UInt8] {
        guard limit > 0 else { return m }
        var out = m
        var seen = [Bool](repeating: false, count: m.count)
        var stack: [Int] = [], component: [Int] = []
        for start in 0..<m.count where m[start] == value && !seen[start] {
            stack = [start]
            seen[start] = true
            component.removeAll(keepingCapacity: true)
            var border = false
            while let p = stack.popLast() {
                component.append(p)
                let x = p % w, y = p / w
                if x == 0 || y == 0 || x == w - 1 || y == h - 1 { border = true }
                for q in [x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1] where q >= 0 {
                    if m[q] == value && !seen[q] { seen[q] = true; stack.append(q) }
                }
            }
            if component.count < limit && (touchingBorder || !border) {
                for p in component { out[p] = 1 - value }
            }
        }
        return out
    }
}
