import CTIFF
import Foundation
import Slides

/// Writes a tiled, pyramidal RGB TIFF that OpenSlide opens with its generic-tiff driver: level 0 in
/// the first directory, each further directory a tiled 2× reduction, down to the level that fits in one
/// tile. XResolution/YResolution are set in pixels per centimetre (20,000 px/cm = 0.5 µm/px), which
/// `Slide` turns into µm/px (OpenSlide 3.4 itself reports no mpp for generic TIFFs; 4.x does).
///
/// Pixels arrive as horizontal strips of level 0, top to bottom, so a 100k × 100k slide never has to fit
/// in memory: each level's 2× reduction is spooled to a temporary file next to the output while the
/// level above is written, and the file is renamed into place only when complete.
public final class PyramidTIFFWriter {
    public enum Compression: Sendable, Equatable {
        /// YCbCr 4:2:0 JPEG at this quality (1–100): what scanners write.
        case jpeg(quality: Int)
        /// Lossless deflate with horizontal differencing: read back exactly.
        case deflate
    }

    public let url: URL
    public let width: Int
    public let height: Int
    public let tileSize: Int
    public let compression: Compression
    /// nil: no resolution tags (a file whose µm/px readers must be told).
    public let mpp: Double?
    public let description: String?

    public init(url: URL, width: Int, height: Int, tileSize: Int = 256, compression: Compression = .jpeg(quality: 90),
                mpp: Double? = 0.5, description: String? = nil) throws {
        guard width > 0, height > 0 else { throw SlideError(.invalidArgument, path: url.path, "image size must be positive, got \(width)×\(height)") }
        guard tileSize >= 16, tileSize % 16 == 0 else {
            throw SlideError(.invalidArgument, path: url.path, "TIFF tile size must be a positive multiple of 16, got \(tileSize)")
        }
        if let mpp, !(mpp > 0) { throw SlideError(.invalidArgument, path: url.path, "µm/px must be positive, got \(mpp)") }
        if case .jpeg(let q) = compression, !(1...100).contains(q) {
            throw SlideError(.invalidArgument, path: url.path, "JPEG quality must be 1–100, got \(q)")
        }
        self.url = url
        self.width = width
        self.height = height
        self.tileSize = tileSize
        self.compression = compression
        self.mpp = mpp
        self.description = description
    }

    /// Sizes of every level, level 0 first.
    public var levelSizes: [(width: Int, height: Int)] {
        var sizes = [(width, height)]
        while max(sizes.last!.0, sizes.last!.1) > tileSize {
            let (w, h) = sizes.last!
            sizes.append(((w + 1) / 2, (h + 1) / 2))
        }
        return sizes
    }

    /// Writes the file. `strip(y, rows)` returns level-0 rows y..<y+rows as width × rows × 3 bytes; it is
    /// called once per tile row, in order, with rows = tileSize except possibly the last.
    public func write(strip: (_ y: Int, _ rows: Int) throws -> [UInt8]) throws {
        let partial = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).part")
        var spools: [URL] = []
        defer {
            try? FileManager.default.removeItem(at: partial)
            for s in spools { try? FileManager.default.removeItem(at: s) }
        }
        // BigTIFF ("w8") past 2 GB of pixels; classic TIFF otherwise, which every reader knows.
        let big = width * height * 3 > 2_000_000_000
        guard let tif = TIFFOpen(partial.path, big ? "w8" : "w") else {
            throw SlideError(.writeFailed, path: url.path, "cannot create \(partial.path)")
        }
        var closed = false
        defer { if !closed { TIFFClose(tif) } }

        let sizes = levelSizes
        try withoutActuallyEscaping(strip) { strip in
        var source: (Int, Int) throws -> [UInt8] = strip
        for (level, size) in sizes.enumerated() {
            try setFields(tif, level: level, width: size.width, height: size.height)
            var spool: FileHandle?
            if level + 1 < sizes.count {
                let spoolURL = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).level\(level + 1).raw")
                FileManager.default.createFile(atPath: spoolURL.path, contents: nil)
                spools.append(spoolURL)
                guard let handle = FileHandle(forWritingAtPath: spoolURL.path) else {
                    throw SlideError(.writeFailed, path: url.path, "cannot create temporary file \(spoolURL.path)")
                }
                spool = handle
            }
            var y = 0
            while y < size.height {
                let rows = min(tileSize, size.height - y)
                let pixels = try source(y, rows)
                guard pixels.count == size.width * rows * 3 else {
                    throw SlideError(.writeFailed, path: url.path, "strip at row \(y) of level \(level) has \(pixels.count) bytes, expected \(size.width * rows * 3)")
                }
                try writeTileRow(tif, pixels: pixels, width: size.width, rows: rows, y: y, level: level)
                if let spool {
                    let half = Resample.halve(RGBImage(width: size.width, height: rows, pixels: pixels))
                    try spool.write(contentsOf: half.pixels)
                }
                y += rows
            }
            guard TIFFWriteDirectory(tif) == 1 else {
                throw SlideError(.writeFailed, path: url.path, "libtiff could not write directory \(level)")
            }
            if let spool {
                try spool.close()
                let spoolURL = spools.last!
                let nextWidth = sizes[level + 1].width
                guard let reader = FileHandle(forReadingAtPath: spoolURL.path) else {
                    throw SlideError(.writeFailed, path: url.path, "cannot read temporary file \(spoolURL.path)")
                }
                source = { y, rows in
                    try reader.seek(toOffset: UInt64(y * nextWidth * 3))
                    return [UInt8](try reader.read(upToCount: rows * nextWidth * 3) ?? Data())
                }
            }
        }
        }
        TIFFClose(tif)
        closed = true
        _ = try? FileManager.default.removeItem(at: url)
        do {
            try FileManager.default.moveItem(at: partial, to: url)
        } catch {
            throw SlideError(.writeFailed, path: url.path, "cannot move the finished file into place: \(error)")
        }
    }

    /// Writes a whole in-memory image (small slides, tests).
    public func write(_ image: RGBImage) throws {
        guard image.width == width, image.height == height else {
            throw SlideError(.invalidArgument, path: url.path, "image is \(image.width)×\(image.height), writer expects \(width)×\(height)")
        }
        try write { y, rows in Array(image.pixels[(y * width * 3)..<((y + rows) * width * 3)]) }
    }

    private func set(_ tif: OpaquePointer, _ tag: Int32, _ values: CVarArg...) throws {
        let ok = withVaList(values) { TIFFVSetField(tif, UInt32(tag), $0) }
        guard ok == 1 else { throw SlideError(.writeFailed, path: url.path, "libtiff rejected TIFF tag \(tag)") }
    }

    private func setFields(_ tif: OpaquePointer, level: Int, width w: Int, height h: Int) throws {
        // Integer TIFF tags travel through C varargs, where anything narrower than int is promoted to int.
        try set(tif, TIFFTAG_SUBFILETYPE, UInt32(level == 0 ? 0 : UInt32(FILETYPE_REDUCEDIMAGE)))
        try set(tif, TIFFTAG_IMAGEWIDTH, UInt32(w))
        try set(tif, TIFFTAG_IMAGELENGTH, UInt32(h))
        try set(tif, TIFFTAG_TILEWIDTH, UInt32(tileSize))
        try set(tif, TIFFTAG_TILELENGTH, UInt32(tileSize))
        try set(tif, TIFFTAG_BITSPERSAMPLE, Int32(8))
        try set(tif, TIFFTAG_SAMPLESPERPIXEL, Int32(3))
        try set(tif, TIFFTAG_PLANARCONFIG, Int32(PLANARCONFIG_CONTIG))
        if let mpp {
            try set(tif, TIFFTAG_XRESOLUTION, 10_000 / (mpp * Double(width) / Double(w)))
            try set(tif, TIFFTAG_YRESOLUTION, 10_000 / (mpp * Double(height) / Double(h)))
            try set(tif, TIFFTAG_RESOLUTIONUNIT, Int32(RESUNIT_CENTIMETER))
        }
        if level == 0, let description {
            try description.withCString { try set(tif, TIFFTAG_IMAGEDESCRIPTION, $0) }
        }
        try "nic".withCString { try set(tif, TIFFTAG_SOFTWARE, $0) }
        switch compression {
        case .jpeg(let quality):
            try set(tif, TIFFTAG_COMPRESSION, Int32(COMPRESSION_JPEG))
            try set(tif, TIFFTAG_PHOTOMETRIC, Int32(PHOTOMETRIC_YCBCR))
            try set(tif, TIFFTAG_JPEGQUALITY, Int32(quality))
            try set(tif, TIFFTAG_JPEGCOLORMODE, Int32(JPEGCOLORMODE_RGB))
        case .deflate:
            try set(tif, TIFFTAG_COMPRESSION, Int32(COMPRESSION_ADOBE_DEFLATE))
            try set(tif, TIFFTAG_PHOTOMETRIC, Int32(PHOTOMETRIC_RGB))
            try set(tif, TIFFTAG_PREDICTOR, Int32(PREDICTOR_HORIZONTAL))
        }
    }

    private func writeTileRow(_ tif: OpaquePointer, pixels: [UInt8], width w: Int, rows: Int, y: Int, level: Int) throws {
        let t = tileSize
        var tile = [UInt8](repeating: 255, count: t * t * 3)
        var x = 0
        while x < w {
            let cols = min(t, w - x)
            pixels.withUnsafeBufferPointer { src in
                tile.withUnsafeMutableBufferPointer { dst in
                    // Edge tiles repeat their last column/row: flat padding keeps JPEG from ringing into the image.
                    for r in 0..<t {
                        let sr = min(r, rows - 1)
                        for c in 0..<t {
                            let sc = min(c, cols - 1)
                            let s = (sr * w + x + sc) * 3, d = (r * t + c) * 3
                            dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                        }
                    }
                }
            }
            let index = TIFFComputeTile(tif, UInt32(x), UInt32(y), 0, 0)
            let written = tile.withUnsafeMutableBytes { TIFFWriteEncodedTile(tif, index, $0.baseAddress, tmsize_t($0.count)) }
            guard written >= 0 else {
                throw SlideError(.writeFailed, path: url.path, "libtiff could not write tile (\(x), \(y)) of level \(level)")
            }
            x += t
        }
    }
}
