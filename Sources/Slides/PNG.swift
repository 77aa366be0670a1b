import Foundation

/// Minimal PNG writer (8-bit RGB, zlib "stored" blocks): previews and masks for people to look at, with
/// no image library to install. Files are uncompressed-size; fine for previews, not for archives.
public enum PNG {
    public static func encode(_ image: RGBImage) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity((image.width * 3 + 1) * image.height)
        for y in 0..<image.height {
            raw.append(0)  // filter: none
            raw.append(contentsOf: image.pixels[(y * image.width * 3)..<((y + 1) * image.width * 3)])
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65_535, raw.count - offset)
            let last: UInt8 = offset + n >= raw.count ? 1 : 0
            zlib.append(last)
            zlib.append(UInt8(n & 0xFF)); zlib.append(UInt8(n >> 8))
            zlib.append(UInt8(~n & 0xFF)); zlib.append(UInt8((~n >> 8) & 0xFF))
            zlib.append(contentsOf: raw[offset..<(offset + n)])
            offset += n
        } while offset < raw.count
        zlib.append(contentsOf: bigEndian(adler32(raw)))

        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header = bigEndian(UInt32(image.width)) + bigEndian(UInt32(image.height))
        header += [8, 2, 0, 0, 0]  // 8 bits, truecolour, deflate, adaptive filtering, no interlace
        chunk(&out, "IHDR", header)
        chunk(&out, "IDAT", zlib)
        chunk(&out, "IEND", [])
        return out
    }

    public static func write(_ image: RGBImage, to url: URL) throws {
        do {
            try Data(encode(image)).write(to: url, options: .atomic)
        } catch {
            throw SlideError(.writeFailed, path: url.path, "cannot write PNG: \(error.localizedDescription)")
        }
    }

    static func chunk(_ out: inout [UInt8], _ type: String, _ data: [UInt8]) {
        out += bigEndian(UInt32(data.count))
        let body = Array(type.utf8) + data
        out += body
        out += bigEndian(crc32(body))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for chunkStart in stride(from: 0, to: bytes.count, by: 5552) {
            for v in bytes[chunkStart..<min(bytes.count, chunkStart + 5552)] { a += UInt32(v); b += a }
            a %= 65_521; b %= 65_521
        }
        return (b << 16) | a
    }
}
