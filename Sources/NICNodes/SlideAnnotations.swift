import CZlib
import Flow
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A point in level-0 pixels.
public struct PlanePoint: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public init(_ x: Double, _ y: Double) { self.x = x; self.y = y }
    /// `(x, y)` for messages.
    var text: String { "(\(x), \(y))" }
}

/// One annotated region: a polygon (outer ring, then holes) of a class, from feature `feature` of `file`.
public struct AnnotatedRegion: Sendable {
    /// The full class name, QuPath's way: a derived class's parts joined by ": " ("Tumor: Positive").
    public var className: String
    /// The class's parts (["Tumor", "Positive"]; one part for a plain class).
    public var parts: [String]
    /// Rings without the repeated closing vertex; ring 0 is the outline, the others holes.
    public var rings: [[PlanePoint]]
    public var feature: Int
    /// The object for messages: its index, and its name and id when the file gives them.
    public var object: String
    public var minX = 0.0, minY = 0.0, maxX = 0.0, maxY = 0.0
    /// Area inside the outline and outside the holes.
    public var area = 0.0

    init(className: String, rings: [[PlanePoint]], feature: Int, parts: [String]? = nil, object: String? = nil) {
        self.className = className
        self.parts = parts ?? [className]
        self.rings = rings
        self.feature = feature
        self.object = object ?? "feature \(feature)"
        let outline = rings[0]
        minX = outline.map(\.x).min() ?? 0; maxX = outline.map(\.x).max() ?? 0
        minY = outline.map(\.y).min() ?? 0; maxY = outline.map(\.y).max() ?? 0
        area = abs(Self.signedArea(outline)) - rings.dropFirst().reduce(0) { $0 + abs(Self.signedArea($1)) }
    }

    static func signedArea(_ ring: [PlanePoint]) -> Double {
        var sum = 0.0
        for i in ring.indices {
            let a = ring[i], b = ring[(i + 1) % ring.count]
            sum += a.x * b.y - b.x * a.y
        }
        return sum / 2
    }

    /// Even-odd rule over all rings: a point in a hole is outside.
    public func contains(_ p: PlanePoint) -> Bool {
        guard p.x >= minX, p.x <= maxX, p.y >= minY, p.y <= maxY else { return false }
        var inside = false
        for ring in rings {
            var j = ring.count - 1
            for i in ring.indices {
                let a = ring[i], b = ring[j]
                if (a.y > p.y) != (b.y > p.y), p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x { inside.toggle() }
                j = i
            }
        }
        return inside
    }
}

/// The annotations of one slide: class regions and class points, read from QuPath GeoJSON or ASAP XML.
///
/// Only annotation objects (QuPath's `objectType: annotation`, or no objectType, or 0.2's
/// `"id": "PathAnnotationObject"`) give regions and `points`. Detections and cells (QuPath's cell
/// detection, an "Export objects → All objects" file) are kept apart, as centroids by class, in
/// `detections`: only tasks that ask for them (count tasks, `objects:`) use them. Tiles, TMA cores and
/// the root are skipped and counted.
public struct SlideAnnotations: Sendable {
    public var file: String
    public var regions: [AnnotatedRegion] = []
    /// Annotation points by full class name.
    public var points: [String: [PlanePoint]] = [:]
    /// Detection and cell centroids by full class name ("" for unclassified), and their class parts.
    public var detections: [String: [PlanePoint]] = [:]
    public var cells: [String: [PlanePoint]] = [:]
    public var detectionParts: [String: [String]] = [:]
    /// Class parts of every annotation class name seen (regions and points).
    public var classParts: [String: [String]] = [:]
    /// Features skipped, with why (line annotations, unclassified objects, empty geometries).
    public var warnings: [String] = []
    /// Objects read per QuPath objectType (annotation, detection, cell, tile, …).
    public var objectTypes: [String: Int] = [:]

    public init(file: String) { self.file = file }

    /// Reads `url` (`.geojson`/`.json`/`.geojson.gz`: QuPath GeoJSON; `.xml`: ASAP) and checks it
    /// against a slide of width × height level-0 pixels. Bad geometry is an error naming the file and
    /// the object (index, name, id).
    public static func read(_ url: URL, width: Int, height: Int) throws -> SlideAnnotations {
        var data: Data
        do { data = try Data(contentsOf: url) } catch { throw NodeError("\(url.path): cannot read: \(error.localizedDescription)") }
        if url.pathExtension.lowercased() == "gz" { data = try gunzip(data, file: url.path) }
        return try read(data, file: url.path, asap: url.pathExtension.lowercased() == "xml", width: width, height: height)
    }

    /// Reads the bytes of an annotation file (QuPath GeoJSON, or ASAP XML when `asap`) named `file`.
    public static func read(_ data: Data, file: String, asap: Bool, width: Int, height: Int) throws -> SlideAnnotations {
        var annotations = asap ? try readASAP(data, file: file) : try readGeoJSON(data, file: file)
        try annotations.check(width: width, height: height)
        return annotations
    }

    /// Largest inflated annotation file read (a QuPath export of a whole slide's cells is hundreds of MB).
    static let maxInflated = 4 << 30

    /// Inflates a gzip file (QuPath's "Export objects" can compress its GeoJSON).
    static func gunzip(_ data: Data, file: String) throws -> Data {
        guard data.count >= 18, data[data.startIndex] == 0x1f, data[data.startIndex + 1] == 0x8b else {
            throw NodeError("\(file): not a gzip file (a .gz name without the gzip header 1f 8b)")
        }
        var stream = z_stream()
        // 15 + 16: a gzip header, the largest window.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw NodeError("\(file): zlib cannot start inflating")
        }
        defer { inflateEnd(&stream) }
        var out = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var input = [UInt8](data)
        var status: Int32 = Z_OK
        try input.withUnsafeMutableBufferPointer { inBuffer in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = uInt(inBuffer.count)
            repeat {
                try buffer.withUnsafeMutableBufferPointer { outBuffer in
                    stream.next_out = outBuffer.baseAddress
                    stream.avail_out = uInt(outBuffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    guard status == Z_OK || status == Z_STREAM_END else {
                        throw NodeError("\(file): corrupt gzip data at compressed byte \(inBuffer.count - Int(stream.avail_in)) (zlib status \(status))")
                    }
                    out.append(outBuffer.baseAddress!, count: outBuffer.count - Int(stream.avail_out))  // invariant: the buffer is not empty
                }
                if out.count > maxInflated { throw NodeError("\(file): inflates to more than \(maxInflated >> 30) GiB; not an annotation file") }
                if status == Z_OK && stream.avail_in == 0 && stream.avail_out > 0 {
                    throw NodeError("\(file): the gzip data ends early (truncated file)")
                }
            } while status != Z_STREAM_END
        }
        return out
    }

    // MARK: Classes

    /// QuPath's classification as its parts: a string ("Tumor: Positive"), 0.4+'s `{"name": …}` or
    /// `{"names": ["Tumor", "Positive"]}` (a derived class), or 0.2's `{"name": "Positive",
    /// "parentClass": {"name": "Tumor"}}`. Nil when there is none.
    static func classParts(_ value: Any?, depth: Int = 0) -> [String]? {
        func split(_ name: String) -> [String] {
            name.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var parts: [String] = []
        if let name = value as? String {
            parts = split(name)
        } else if let object = value as? [String: Any] {
            if let names = object["names"] as? [Any] {
                parts = names.compactMap { $0 as? String }.flatMap(split)
            } else {
                if depth < 16, let parent = classParts(object["parentClass"], depth: depth + 1) { parts = parent }
                if let name = object["name"] as? String { parts += split(name) }
            }
        }
        return parts.isEmpty ? nil : parts
    }

    /// QuPath's object type of a feature: `properties.objectType` (0.3+; `object_type` and `type`
    /// before), 0.2's type in the feature `id` ("PathCellObject"), else annotation (QuPath's default).
    static func objectType(_ feature: [String: Any], _ properties: [String: Any]?) -> String {
        let legacy = ["PathAnnotationObject": "annotation", "PathDetectionObject": "detection", "PathCellObject": "cell",
                      "PathTileObject": "tile", "TMACoreObject": "tmaCore", "PathRootObject": "root"]
        let stated = (properties?["objectType"] ?? properties?["object_type"] ?? properties?["type"]) as? String
        let raw = stated ?? (feature["id"] as? String).flatMap { legacy[$0] != nil ? $0 : nil } ?? "annotation"
        if let mapped = legacy[raw] { return mapped }
        return raw == "tma_core" ? "tmaCore" : raw
    }

    /// A position's x, y, from a JSON array of numbers.
    static func planePoint(_ value: Any?) -> PlanePoint? {
        guard let pair = value as? [Any], pair.count >= 2, let x = (pair[0] as? NSNumber)?.doubleValue, let y = (pair[1] as? NSNumber)?.doubleValue,
              x.isFinite, y.isFinite else { return nil }
        return PlanePoint(x, y)
    }

    /// Where a detection or cell is: a point's position, a polygon's area centroid (its outline's;
    /// the largest part's for a MultiPolygon), else the mean of its positions. Nil without positions.
    static func centroid(_ geometry: [String: Any]) -> PlanePoint? {
        let coordinates = geometry["coordinates"]
        func ringCentroid(_ ring: Any?) -> (PlanePoint, Double)? {
            guard let list = ring as? [Any] else { return nil }
            let points = list.compactMap(planePoint)
            guard !points.isEmpty else { return nil }
            var a = 0.0, cx = 0.0, cy = 0.0
            for i in points.indices {
                let p = points[i], q = points[(i + 1) % points.count]
                let cross = p.x * q.y - q.x * p.y
                a += cross; cx += (p.x + q.x) * cross; cy += (p.y + q.y) * cross
            }
            if abs(a) < 1e-12 {
                return (PlanePoint(points.map(\.x).reduce(0, +) / Double(points.count), points.map(\.y).reduce(0, +) / Double(points.count)), 0)
            }
            return (PlanePoint(cx / (3 * a), cy / (3 * a)), abs(a) / 2)
        }
        switch geometry["type"] as? String {
        case "Point": return planePoint(coordinates)
        case "MultiPoint", "LineString": return ringCentroid(coordinates)?.0
        case "Polygon": return ringCentroid((coordinates as? [Any])?.first)?.0
        case "MultiPolygon":
            return (coordinates as? [Any])?.compactMap { ringCentroid(($0 as? [Any])?.first) }.max { $0.1 < $1.1 }?.0
        default: return nil
        }
    }

    /// Gson (QuPath's JSON writer) writes non-finite doubles as the bare literals NaN, Infinity and
    /// -Infinity, which JSON does not have; outside strings they become null (a NaN measurement is
    /// no measurement; a NaN coordinate is then reported as not a position).
    static func nullingNonFiniteLiterals(_ data: Data) -> Data {
        let bytes = [UInt8](data)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0, inString = false
        let nan = Array("NaN".utf8), infinity = Array("Infinity".utf8), null = Array("null".utf8)
        func matches(_ word: [UInt8], at k: Int) -> Bool {
            k + word.count <= bytes.count && bytes[k..<(k + word.count)].elementsEqual(word)
        }
        while i < bytes.count {
            let b = bytes[i]
            if inString {
                out.append(b)
                if b == UInt8(ascii: "\\"), i + 1 < bytes.count { out.append(bytes[i + 1]); i += 2; continue }
                if b == UInt8(ascii: "\"") { inString = false }
                i += 1
                continue
            }
            if b == UInt8(ascii: "\"") { inString = true; out.append(b); i += 1; continue }
            if matches(nan, at: i) { out += null; i += nan.count; continue }
            if matches(infinity, at: i) { out += null; i += infinity.count; continue }
            if (b == UInt8(ascii: "-") || b == UInt8(ascii: "+")) && matches(infinity, at: i + 1) { out += null; i += 1 + infinity.count; continue }
            out.append(b)
            i += 1
        }
        return Data(out)
    }

    // MARK: QuPath GeoJSON

    /// A FeatureCollection, a bare array of features (older QuPath exports) or one Feature.
    public static func readGeoJSON(_ data: Data, file: String) throws -> SlideAnnotations {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: nullingNonFiniteLiterals(data))
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
            throw NodeError("\(file): not JSON: \(detail)")
        }
        let features: [Any]
        if let object = root as? [String: Any], object["type"] as? String == "FeatureCollection" {
            guard let list = object["features"] as? [Any] else { throw NodeError("\(file): FeatureCollection without a 'features' array") }
            features = list
        } else if let object = root as? [String: Any], object["type"] as? String == "Feature" {
            features = [object]
        } else if let list = root as? [Any] {
            features = list
        } else {
            throw NodeError("\(file): expected a GeoJSON FeatureCollection, a Feature or an array of Features")
        }
        var out = SlideAnnotations(file: file)
        var unclassified = 0, unplaced = 0
        var unknownTypes: Set<String> = []
        for (index, item) in features.enumerated() {
            guard let feature = item as? [String: Any], let geometry = feature["geometry"] as? [String: Any],
                  let type = geometry["type"] as? String else {
                throw NodeError("\(file): feature \(index): not a Feature with a geometry")
            }
            let properties = feature["properties"] as? [String: Any]
            var label = "feature \(index)"
            if let name = properties?["name"] as? String, !name.isEmpty { label += " '\(name)'" }
            if let id = feature["id"] as? String, !id.isEmpty, !id.hasPrefix("Path") { label += " (id \(id))" }
            let at = "\(file): \(label)"
            let objectType = Self.objectType(feature, properties)
            out.objectTypes[objectType, default: 0] += 1
            let parts = classParts(properties?["classification"])
            switch objectType {
            case "annotation":
                break
            case "detection", "cell":
                // Counted where a task asks for them; unclassified ones count under "".
                guard let centre = centroid(geometry) else { unplaced += 1; continue }
                let name = parts?.joined(separator: ": ") ?? ""
                if objectType == "cell" { out.cells[name, default: []].append(centre) } else { out.detections[name, default: []].append(centre) }
                out.detectionParts[name] = parts ?? []
                continue
            case "tile", "tmaCore", "root":
                continue  // not annotations of tissue classes
            default:
                // QuPath reads an object type it does not know as an annotation (with a warning): so do we.
                unknownTypes.insert(objectType)
            }
            guard let parts else {
                unclassified += 1
                if unclassified <= 5 { out.warnings.append("\(at): no properties.classification.name; skipped") }
                continue
            }
            let className = parts.joined(separator: ": ")
            out.classParts[className] = parts
            func position(_ value: Any?, _ what: String) throws -> PlanePoint {
                guard let p = planePoint(value) else {
                    throw NodeError("\(at) (\(type), class \(className)): \(what) is not an [x, y] position of finite numbers")
                }
                return p
            }
            func polygon(_ value: Any?, part: String) throws -> [[PlanePoint]] {
                guard let rings = value as? [Any], !rings.isEmpty else { throw NodeError("\(at) (\(type), class \(className)): \(part)has no rings") }
                return try rings.enumerated().map { r, ring in
                    guard let positions = ring as? [Any] else { throw NodeError("\(at) (\(type), class \(className)): \(part)ring \(r) is not a list of positions") }
                    let points = try positions.enumerated().map { try position($1, "\(part)ring \(r) position \($0)") }
                    guard points.count >= 4 else {
                        throw NodeError("\(at) (\(type), class \(className)): \(part)ring \(r) has \(points.count) positions; a closed ring needs at least 4")
                    }
                    guard points.first == points.last else {
                        throw NodeError("\(at) (\(type), class \(className)): \(part)ring \(r) is not closed (first \(points[0].text), last \(points[points.count - 1].text)); GeoJSON rings repeat their first position at the end")
                    }
                    return withoutRepeats(Array(points.dropLast()))
                }
            }
            switch type {
            case "Point":
                out.points[className, default: []].append(try position(geometry["coordinates"], "the position"))
            case "MultiPoint":
                guard let list = geometry["coordinates"] as? [Any] else { throw NodeError("\(at) (MultiPoint, class \(className)): coordinates are not a list") }
                out.points[className, default: []] += try list.enumerated().map { try position($1, "position \($0)") }
            case "Polygon":
                out.regions.append(AnnotatedRegion(className: className, rings: try polygon(geometry["coordinates"], part: ""), feature: index,
                                                   parts: parts, object: label))
            case "MultiPolygon":
                guard let polygons = geometry["coordinates"] as? [Any] else { throw NodeError("\(at) (MultiPolygon, class \(className)): coordinates are not a list") }
                for (p, part) in polygons.enumerated() {
                    out.regions.append(AnnotatedRegion(className: className, rings: try polygon(part, part: "polygon \(p) "), feature: index,
                                                       parts: parts, object: "\(label) polygon \(p)"))
                }
            default:
                out.warnings.append("\(at): \(type) geometry (class \(className)) is neither a region nor points; skipped")
            }
        }
        if unclassified > 5 { out.warnings.append("\(file): \(unclassified) annotations without a classification skipped in all") }
        if !unknownTypes.isEmpty {
            out.warnings.append("\(file): unknown objectType \(unknownTypes.sorted().map { "'\($0)'" }.joined(separator: ", ")) read as annotation (as QuPath does)")
        }
        if unplaced > 0 { out.warnings.append("\(file): \(unplaced) detection(s) without a usable geometry skipped") }
        return out
    }

    /// A ring without consecutive repeated vertices (JTS, which QuPath uses, accepts them; they are
    /// zero-length edges, not crossings).
    static func withoutRepeats(_ ring: [PlanePoint]) -> [PlanePoint] {
        var out: [PlanePoint] = []
        for p in ring where out.last != p { out.append(p) }
        while out.count > 1 && out.first == out.last { out.removeLast() }
        return out
    }

    // MARK: ASAP XML

    /// ASAP's `<ASAP_Annotations><Annotations><Annotation Type=… PartOfGroup=…><Coordinates><Coordinate
    /// Order X Y/>`: Polygon, Rectangle and Spline (its control points) are regions, Dot and PointSet
    /// points; the group is the class. ASAP rings are implicitly closed.
    public static func readASAP(_ data: Data, file: String) throws -> SlideAnnotations {
        // ASAP writes UTF-8; FoundationXML traps on element names that are not valid UTF-8.
        guard String(data: data, encoding: .utf8) != nil else {
            throw NodeError("\(file): not UTF-8 text (ASAP writes its XML as UTF-8); re-save the file as UTF-8")
        }
        // FoundationXML reads a processing instruction without data through a null pointer; ASAP writes
        // none beyond the XML declaration, so any other `<?` is refused before parsing.
        let bytes = [UInt8](data)
        var start = 0
        while start < bytes.count, [0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains(bytes[start]) { start += 1 }
        let declaration = Array("<?xml".utf8)
        let declared = start + 6 <= bytes.count && bytes[start..<(start + 5)].elementsEqual(declaration) && [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start + 5])
        if let k = (start..<max(start, bytes.count - 1)).first(where: { bytes[$0] == UInt8(ascii: "<") && bytes[$0 + 1] == UInt8(ascii: "?") && !($0 == start && declared) }) {
            let line = bytes[..<k].filter { $0 == 0x0A }.count + 1
            throw NodeError("\(file):\(line): a processing instruction ('<?'); an ASAP annotation file has only the XML declaration")
        }
        let reader = ASAPReader()
        let parser = XMLParser(data: data)
        parser.delegate = reader
        guard parser.parse(), reader.error == nil else {
            throw NodeError("\(file):\(parser.lineNumber): \(reader.error ?? parser.parserError?.localizedDescription ?? "not XML")")
        }
        var out = SlideAnnotations(file: file)
        for (index, annotation) in reader.annotations.enumerated() {
            let label = annotation.name.isEmpty ? "annotation \(index)" : "annotation '\(annotation.name)' (\(index))"
            let at = "\(file): \(label) (\(annotation.type))"
            let points = annotation.coordinates.sorted { $0.order < $1.order }.map(\.point)
            guard !annotation.group.isEmpty, annotation.group != "None" else { out.warnings.append("\(at): no PartOfGroup; skipped"); continue }
            switch annotation.type {
            case "Dot", "PointSet":
                out.points[annotation.group, default: []] += points
                out.classParts[annotation.group] = [annotation.group]
            case "Polygon", "Rectangle", "Spline":
                let ring = withoutRepeats(points)
                guard ring.count >= 3 else { throw NodeError("\(at): \(ring.count) distinct coordinates; a polygon needs at least 3") }
                out.regions.append(AnnotatedRegion(className: annotation.group, rings: [ring], feature: index, object: label))
                out.classParts[annotation.group] = [annotation.group]
            default:
                out.warnings.append("\(at): type \(annotation.type) is neither a region nor points; skipped")
            }
        }
        return out
    }

    // MARK: Checks

    /// Points must lie on the slide, regions must touch it, rings must not cross themselves (a
    /// self-intersecting outline has no well-defined inside: QuPath's "fix geometry" repairs it).
    mutating func check(width: Int, height: Int) throws {
        let w = Double(width), h = Double(height)
        // Detections and cells off the slide (or with a degenerate geometry) are not counted anywhere.
        var offSlide = 0
        func onSlide(_ p: PlanePoint) -> Bool { p.x.isFinite && p.y.isFinite && p.x >= 0 && p.y >= 0 && p.x < w && p.y < h }
        for key in detections.keys { let all = detections[key]!; detections[key] = all.filter(onSlide); offSlide += all.count - detections[key]!.count }  // invariant: iterating its keys
        for key in cells.keys { let all = cells[key]!; cells[key] = all.filter(onSlide); offSlide += all.count - cells[key]!.count }  // invariant: iterating its keys
        if offSlide > 0 { warnings.append("\(file): \(offSlide) detection(s)/cell(s) whose centre lies outside the \(width) × \(height) slide skipped") }
        for (className, list) in points.sorted(by: { $0.key < $1.key }) {
            if let p = list.first(where: { $0.x < 0 || $0.y < 0 || $0.x >= w || $0.y >= h }) {
                throw NodeError("\(file): a point of class '\(className)' at (\(p.x), \(p.y)) lies outside the \(width) × \(height) slide; are these the annotations of another slide, or not in level-0 pixels?")
            }
        }
        for region in regions {
            let at = "\(file): \(region.object) (class \(region.className))"
            if region.maxX < 0 || region.maxY < 0 || region.minX >= w || region.minY >= h {
                throw NodeError("\(at): the polygon lies outside the \(width) × \(height) slide")
            }
            for (r, ring) in region.rings.enumerated() {
                if let (i, j) = Self.selfIntersection(ring) {
                    throw NodeError("\(at): ring \(r) crosses itself (edge \(i) from \(ring[i].text) and edge \(j) from \(ring[j].text)); QuPath's Objects › Annotations › Fix geometry repairs it")
                }
            }
            guard region.rings[0].count >= 3, region.area > 0 else { throw NodeError("\(at): the polygon has no area") }
        }
    }

    /// The first pair of non-adjacent edges that intersect (edges i → i+1), if any.
    static func selfIntersection(_ ring: [PlanePoint]) -> (Int, Int)? {
        let n = ring.count
        guard n >= 4 else { return nil }
        func orientation(_ a: PlanePoint, _ b: PlanePoint, _ c: PlanePoint) -> Double { (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x) }
        func onSegment(_ a: PlanePoint, _ b: PlanePoint, _ p: PlanePoint) -> Bool {
            min(a.x, b.x) <= p.x && p.x <= max(a.x, b.x) && min(a.y, b.y) <= p.y && p.y <= max(a.y, b.y)
        }
        func intersect(_ a: PlanePoint, _ b: PlanePoint, _ c: PlanePoint, _ d: PlanePoint) -> Bool {
            guard max(a.x, b.x) >= min(c.x, d.x), max(c.x, d.x) >= min(a.x, b.x), max(a.y, b.y) >= min(c.y, d.y), max(c.y, d.y) >= min(a.y, b.y) else { return false }
            let o1 = orientation(a, b, c), o2 = orientation(a, b, d), o3 = orientation(c, d, a), o4 = orientation(c, d, b)
            if (o1 > 0) != (o2 > 0) && (o3 > 0) != (o4 > 0) && o1 != 0 && o2 != 0 && o3 != 0 && o4 != 0 { return true }
            return (o1 == 0 && onSegment(a, b, c)) || (o2 == 0 && onSegment(a, b, d)) || (o3 == 0 && onSegment(c, d, a)) || (o4 == 0 && onSegment(c, d, b))
        }
        for i in 0..<n {
            for j in stride(from: i + 2, to: n, by: 1) where !(i == 0 && j == n - 1) {
                if intersect(ring[i], ring[(i + 1) % n], ring[j], ring[(j + 1) % n]) { return (i, j) }
            }
        }
        return nil
    }
}

/// Collects ASAP `<Annotation>` elements and their coordinates.
private final class ASAPReader: NSObject, XMLParserDelegate {
    struct Annotation { var name: String; var type: String; var group: String; var coordinates: [(order: Int, point: PlanePoint)] = [] }
    var annotations: [Annotation] = []
    var error: String?

    func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String]) {
        switch element {
        case "Annotation":
            annotations.append(Annotation(name: attributes["Name"] ?? "", type: attributes["Type"] ?? "", group: attributes["PartOfGroup"] ?? ""))
        case "Coordinate":
            guard !annotations.isEmpty else { error = "a Coordinate outside an Annotation"; parser.abortParsing(); return }
            guard let x = attributes["X"].flatMap({ Double($0.replacingOccurrences(of: ",", with: ".")) }),
                  let y = attributes["Y"].flatMap({ Double($0.replacingOccurrences(of: ",", with: ".")) }), x.isFinite, y.isFinite else {
                let current = annotations[annotations.count - 1]
                let name = current.name.isEmpty ? "annotation \(annotations.count - 1)" : "annotation '\(current.name)' (\(annotations.count - 1))"
                error = "\(name): a Coordinate without finite numeric X and Y (X=\"\(attributes["X"] ?? "")\", Y=\"\(attributes["Y"] ?? "")\")"
                parser.abortParsing(); return
            }
            let order = attributes["Order"].flatMap { Int($0) } ?? annotations[annotations.count - 1].coordinates.count
            annotations[annotations.count - 1].coordinates.append((order, PlanePoint(x, y)))
        default:
            break
        }
    }
}
