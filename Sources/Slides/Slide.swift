import COpenSlide
import Foundation

/// One pyramid level as OpenSlide reports it.
public struct SlideLevel: Sendable, Equatable {
    public let index: Int
    public let width: Int
    public let height: Int
    /// Level-0 pixels per pixel of this level.
    public let downsample: Double
    /// µm per pixel of this level (level 0's µm/px × downsample).
    public let mpp: Double
}

/// Where a slide's µm/px came from.
public enum ResolutionSource: String, Sendable {
    /// `openslide.mpp-x` / `openslide.mpp-y` (vendor metadata).
    case metadata
    /// TIFF XResolution/YResolution with ResolutionUnit centimeter or inch (generic tiled TIFFs; OpenSlide
    /// 3.4 reports these only as `tiff.*` properties).
    case tiffResolution
    /// Given by the user because the file has none (or a wrong one).
    case override
}

/// A whole-slide image opened with OpenSlide.
///
/// One handle serves many threads: OpenSlide documents every function except `openslide_close` as
/// thread-safe, and this class closes the handle only in `deinit`, when no reader can hold it.
public final class Slide: @unchecked Sendable {  // the OpenSlide handle is thread-safe (above)
    public let url: URL
    public let levels: [SlideLevel]
    public let properties: [String: String]
    /// `openslide.vendor` (aperio, hamamatsu, generic-tiff, ...).
    public let vendor: String
    /// µm per level-0 pixel in x and y.
    public let mppX: Double
    public let mppY: Double
    public let resolutionSource: ResolutionSource
    private let handle: OpaquePointer

    public var width: Int { levels[0].width }
    public var height: Int { levels[0].height }
    /// The mean of the x and y resolutions (they agree on every scanner we know of).
    public var mpp: Double { (mppX + mppY) / 2 }
    public var path: String { url.path }

    /// Opens a slide. `mpp` supplies level 0's µm/px for files without that metadata (and overrides
    /// the metadata when given).
    public init(url: URL, mpp override: Double? = nil) throws {
        self.url = url
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SlideError(.notFound, path: path, "slide not found")
        }
        if isDirectory.boolValue { throw SlideError(.unsupportedFormat, path: path, "is a folder, not a slide file") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw SlideError(.unreadable, path: path, "no permission to read the file")
        }
        if let override, !(override > 0 && override.isFinite) {
            throw SlideError(.invalidArgument, path: path, "mpp override must be a positive number, got \(override)")
        }
        guard openslide_detect_vendor(path) != nil, let handle = openslide_open(path) else {
            throw SlideError(.unsupportedFormat, path: path,
                             "not a slide format OpenSlide \(String(cString: openslide_get_version())) can read (or the file is damaged)")
        }
        // Every failure below closes the handle here, once; a slide that opens keeps it until `deinit`.
        var opened = false
        defer { if !opened { openslide_close(handle) } }
        if let message = Slide.failure(handle) {
            throw SlideError(.unreadable, path: path, "OpenSlide cannot read it: \(message)")
        }
        self.handle = handle

        var props: [String: String] = [:]
        if let names = openslide_get_property_names(handle) {
            var i = 0
            while let name = names[i] {
                if let value = openslide_get_property_value(handle, name) { props[String(cString: name)] = String(cString: value) }
                i += 1
            }
        }
        properties = props
        vendor = props["openslide.vendor"] ?? "unknown"

        let (mx, my, source): (Double, Double, ResolutionSource)
        if let override {
            (mx, my, source) = (override, override, .override)
        } else if let x = props["openslide.mpp-x"].flatMap(Double.init), let y = props["openslide.mpp-y"].flatMap(Double.init), x > 0, y > 0 {
            (mx, my, source) = (x, y, .metadata)
        } else if let (x, y) = Slide.tiffResolution(props) {
            (mx, my, source) = (x, y, .tiffResolution)
        } else {
            throw SlideError(.missingResolution, path: path,
                             "no µm/px in the file (no openslide.mpp-x, no usable TIFF resolution); give it by hand with the 'mpp' param")
        }
        mppX = mx
        mppY = my
        resolutionSource = source

        let count = Int(openslide_get_level_count(handle))
        guard count > 0 else {
            throw SlideError(.unreadable, path: path, "OpenSlide reports no pyramid levels")
        }
        var levels: [SlideLevel] = []
        for l in 0..<count {
            var w: Int64 = 0, h: Int64 = 0
            openslide_get_level_dimensions(handle, Int32(l), &w, &h)
            let d = openslide_get_level_downsample(handle, Int32(l))
            levels.append(SlideLevel(index: l, width: Int(w), height: Int(h), downsample: d, mpp: (mx + my) / 2 * d))
        }
        // Checked before the last field is set: a throw from a fully initialised slide would run
        // `deinit` as well, and close the handle a second time.
        if let message = Slide.failure(handle) {
            throw SlideError(.unreadable, path: path, "OpenSlide cannot read it: \(message)")
        }
        self.levels = levels
        opened = true
    }

    public convenience init(path: String, mpp: Double? = nil) throws {
        try self.init(url: URL(fileURLWithPath: path), mpp: mpp)
    }

    deinit { openslide_close(handle) }

    /// OpenSlide's error for the handle, if it has one: once set, it stays, and every later call on
    /// the handle fails.
    private static func failure(_ handle: OpaquePointer) -> String? {
        openslide_get_error(handle).map { String(cString: $0) }
    }

    /// A resolution from TIFF tags, accepted only when it is plausible for microscopy (0.05–50 µm/px):
    /// many generic TIFF writers put 72 dpi there, which means "unknown", not 353 µm/px.
    static func tiffResolution(_ props: [String: String]) -> (Double, Double)? {
        guard let unit = props["tiff.ResolutionUnit"], let xr = props["tiff.XResolution"].flatMap(Double.init),
              let yr = props["tiff.YResolution"].flatMap(Double.init), xr > 0, yr > 0 else { return nil }
        let micronsPerUnit: Double
        switch unit.lowercased() {
        case "centimeter": micronsPerUnit = 10_000
        case "inch": micronsPerUnit = 25_400
        default: return nil
        }
        let x = micronsPerUnit / xr, y = micronsPerUnit / yr
        guard (0.05...50).contains(x), (0.05...50).contains(y) else { return nil }
        return (x, y)
    }

    // MARK: Reading

    /// Reads pixels of one level as OpenSlide stores them. (x, y) is the top-left corner in level-0
    /// pixels, width and height are in pixels of `level`. Areas outside the slide or transparent in the
    /// file come back white.
    public func readLevelRegion(level: Int, x: Int, y: Int, width: Int, height: Int) throws -> RGBImage {
        guard levels.indices.contains(level) else {
            throw SlideError(.invalidArgument, path: path, "level \(level) does not exist (the slide has \(levels.count))")
        }
        guard width > 0, height > 0 else {
            throw SlideError(.invalidArgument, path: path, "region size must be positive, got \(width)×\(height)")
        }
        var argb = [UInt32](repeating: 0, count: width * height)
        argb.withUnsafeMutableBufferPointer { buffer in
            openslide_read_region(handle, buffer.baseAddress, Int64(x), Int64(y), Int32(level), Int64(width), Int64(height))
        }
        if let message = Slide.failure(handle) {
            throw SlideError(.unreadable, path: path, "reading level \(level) at (\(x), \(y)) size \(width)×\(height) failed: \(message)")
        }
        return Slide.compositeOnWhite(argb, width: width, height: height)
    }

    /// OpenSlide returns premultiplied ARGB (native-endian 0xAARRGGBB). Compositing a premultiplied
    /// colour over white is `c + (255 − a)`: exact, and fully transparent pixels (a = 0, c = 0) become white.
    static func compositeOnWhite(_ argb: [UInt32], width: Int, height: Int) -> RGBImage {
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        argb.withUnsafeBufferPointer { src in
            rgb.withUnsafeMutableBufferPointer { dst in
                for i in 0..<(width * height) {
                    let p = src[i]
                    let a = p >> 24
                    let inverse = 255 - a
                    dst[i * 3] = UInt8(truncatingIfNeeded: min(255, ((p >> 16) & 0xFF) + inverse))
                    dst[i * 3 + 1] = UInt8(truncatingIfNeeded: min(255, ((p >> 8) & 0xFF) + inverse))
                    dst[i * 3 + 2] = UInt8(truncatingIfNeeded: min(255, (p & 0xFF) + inverse))
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }

    /// The level a read at `targetMPP` uses: the coarsest one at least as fine as the target (within
    /// `tolerance`), so that resampling only ever shrinks, except when the target is finer than level 0.
    public func level(forMPP targetMPP: Double, tolerance: Double = 0.02) -> SlideLevel {
        var best = levels[0]
        for level in levels where level.mpp <= targetMPP * (1 + tolerance) && level.mpp > best.mpp { best = level }
        return best
    }

    /// Reads a `width` × `height` image at `targetMPP` µm/px whose top-left corner is (x, y) in level-0
    /// pixels. A level within `tolerance` (relative) of the target is read as it is, without
    /// resampling — 0.499 µm/px Aperio slides at 0.5 µm/px, for example; otherwise the best level is
    /// resampled (area average when shrinking, bilinear when enlarging; see `Resample`).
    public func readRegion(x: Int, y: Int, width: Int, height: Int, mpp targetMPP: Double, tolerance: Double = 0.02) throws -> RGBImage {
        guard targetMPP > 0, targetMPP.isFinite else {
            throw SlideError(.invalidArgument, path: path, "target µm/px must be positive, got \(targetMPP)")
        }
        guard width > 0, height > 0 else {
            throw SlideError(.invalidArgument, path: path, "region size must be positive, got \(width)×\(height)")
        }
        let level = self.level(forMPP: targetMPP, tolerance: tolerance)
        let d = level.downsample
        let scaleX = targetMPP / (mppX * d), scaleY = targetMPP / (mppY * d)
        if abs(scaleX - 1) <= tolerance && abs(scaleY - 1) <= tolerance {
            return try readLevelRegion(level: level.index, x: x, y: y, width: width, height: height)
        }
        // Source window in this level's pixels, with a margin for the filter footprint.
        let sx = Double(x) / d, sy = Double(y) / d
        let ix = Int(sx.rounded(.down)) - 1, iy = Int(sy.rounded(.down)) - 1
        let sw = Int((Double(width) * scaleX).rounded(.up)) + 3
        let sh = Int((Double(height) * scaleY).rounded(.up)) + 3
        let source = try readLevelRegion(level: level.index, x: Int((Double(ix) * d).rounded()), y: Int((Double(iy) * d).rounded()), width: sw, height: sh)
        return Resample.resample(source, originX: sx - Double(ix), originY: sy - Double(iy), scaleX: scaleX, scaleY: scaleY,
                                 width: width, height: height)
    }

    /// The whole slide at `targetMPP` (for thumbnails and tissue masks; pick a coarse resolution).
    public func readWhole(mpp targetMPP: Double) throws -> RGBImage {
        let w = max(1, Int((Double(width) * mppX / targetMPP).rounded()))
        let h = max(1, Int((Double(height) * mppY / targetMPP).rounded()))
        return try readRegion(x: 0, y: 0, width: w, height: h, mpp: targetMPP, tolerance: 0)
    }

    /// Throws `outOfBounds` unless a `size`-pixel patch at `mpp` centred on level-0 (cx, cy) lies inside the slide.
    public func checkPatch(centreX cx: Int, centreY cy: Int, size: Int, mpp targetMPP: Double) throws {
        let halfX = Double(size) * targetMPP / mppX / 2, halfY = Double(size) * targetMPP / mppY / 2
        if Double(cx) - halfX < 0 || Double(cy) - halfY < 0 || Double(cx) + halfX > Double(width) || Double(cy) + halfY > Double(height) {
            throw SlideError(.outOfBounds, path: path,
                             "a \(size) px patch at \(targetMPP) µm/px centred on (\(cx), \(cy)) extends outside the slide (level 0 is \(width)×\(height))")
        }
    }
}
