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
}

/// One annotated region: a polygon (outer ring, then holes) of a class, from feature `feature` of `file`.
public struct AnnotatedRegion: Sendable {
    public var className: String
    /// Rings without the repeated closing vertex; ring 0 is the outline, the others holes.
    public var rings: [[PlanePoint]]
    public var feature: Int
    public var minX = 0.0, minY = 0.0, maxX = 0.0, maxY = 0.0
    /// Area inside the outline and outside the holes.
    public var area = 0.0

    init(className: String, rings: [[PlanePoint]], feature: Int) {
        self.className = className
        self.rings = rings
        self.feature = feature
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
public struct SlideAnnotations: Sendable {
    public var file: String
    public var regions: [AnnotatedRegion] = []
    public var points: [String: [PlanePoint]] = [:]
    /// Features skipped, with why (line annotations, unclassified objects, empty geometries).
    public var warnings: [String] = []

    public init(file: String) { self.file = file }

    /// Reads `url` (`.geojson`/`.json`: QuPath GeoJSON; `.xml`: ASAP) and checks it against a slide of
    /// width × height level-0 pixels. Bad geometry is an error naming the file and feature index.
    public static func read(_ url: URL, width: Int, height: Int) throws -> SlideAnnotations {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw NodeError("\(url.path): cannot read: \(error.localizedDescription)") }
        var annotations = url.pathExtension.lowercased() == "xml" ? try readASAP(data, file: url.path) : try readGeoJSON(data, file: url.path)
        try annotations.check(width: width, height: height)
        return annotations
    }

    // MARK: QuPath GeoJSON

    /// A FeatureCollection, a bare array of features (older QuPath exports) or one Feature.
    public static func readGeoJSON(_ data: Data, file: String) throws -> SlideAnnotations {
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch { throw NodeError("\(file): not JSON: \(error.localizedDescription)") }
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
        for (index, item) in features.enumerated() {
            let at = "\(file): feature \(index)"
            guard let feature = item as? [String: Any], let geometry = feature["geometry"] as? [String: Any],
                  let type = geometry["type"] as? String else {
                throw NodeError("\(at): not a Feature with a geometry")
            }
            let properties = feature["properties"] as? [String: Any]
            let classification = properties?["classification"] as? [String: Any]
            guard let className = classification?["name"] as? String, !className.isEmpty else {
                out.warnings.append("\(at): no properties.classification.name; skipped")
                continue
            }
            let coordinates = geometry["coordinates"]
            func position(_ value: Any?, _ what: String) throws -> PlanePoint {
                guard let pair = value as? [Any], pair.count >= 2, let x = (pair[0] as? NSNumber)?.doubleValue, let y = (pair[1] as? NSNumber)?.doubleValue,
                      x.isFinite, y.isFinite else {
                    throw NodeError("\(at) (\(type), class \(className)): \(what) is not an [x, y] position")
                }
                return PlanePoint(x, y)
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
                        throw NodeError("\(at) (\(type), class \(className)): \(part)ring \(r) is not closed (first \(points[0]), last \(points[points.count - 1])); GeoJSON rings repeat their first position at the end")
                    }
                    return Array(points.dropLast())
                }
            }
            switch type {
            case "Point":
                out.points[className, default: []].append(try position(coordinates, "the position"))
            case "MultiPoint":
                guard let list = coordinates as? [Any] else { throw NodeError("\(at) (MultiPoint, class \(className)): coordinates are not a list") }
                out.points[className, default: []] += try list.enumerated().map { try position($1, "position \($0)") }
            case "Polygon":
                out.regions.append(AnnotatedRegion(className: className, rings: try polygon(coordinates, part: ""), feature: index))
            case "MultiPolygon":
                guard let parts = coordinates as? [Any] else { throw NodeError("\(at) (MultiPolygon, class \(className)): coordinates are not a list") }
                for (p, part) in parts.enumerated() {
                    out.regions.append(AnnotatedRegion(className: className, rings: try polygon(part, part: "polygon \(p) "), feature: index))
                }
            default:
                out.warnings.append("\(at): \(type) geometry (class \(className)) is neither a region nor points; skipped")
            }
        }
        return out
    }

    // MARK: ASAP XML

    /// ASAP's `<ASAP_Annotations><Annotations><Annotation Type=… PartOfGroup=…><Coordinates><Coordinate
    /// Order X Y/>`: Polygon, Rectangle and Spline (its control points) are regions, Dot and PointSet
    /// points; the group is the class. ASAP rings are implicitly closed.
    public static func readASAP(_ data: Data, file: String) throws -> SlideAnnotations {
        let reader = ASAPReader()
        let parser = XMLParser(data: data)
        parser.delegate = reader
        guard parser.parse(), reader.error == nil else {
            throw NodeError("\(file):\(parser.lineNumber): \(reader.error ?? parser.parserError?.localizedDescription ?? "not XML")")
        }
        var out = SlideAnnotations(file: file)
        for (index, annotation) in reader.annotations.enumerated() {
            let at = "\(file): annotation \(index) ('\(annotation.name)', \(annotation.type))"
            let points = annotation.coordinates.sorted { $0.order < $1.order }.map(\.point)
            guard !annotation.group.isEmpty, annotation.group != "None" else { out.warnings.append("\(at): no PartOfGroup; skipped"); continue }
            switch annotation.type {
            case "Dot", "PointSet":
                out.points[annotation.group, default: []] += points
            case "Polygon", "Rectangle", "Spline":
                var ring = points
                if ring.count > 1 && ring.first == ring.last { ring.removeLast() }
                guard ring.count >= 3 else { throw NodeError("\(at): \(ring.count) coordinates; a polygon needs at least 3") }
                out.regions.append(AnnotatedRegion(className: annotation.group, rings: [ring], feature: index))
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
        for (className, list) in points.sorted(by: { $0.key < $1.key }) {
            if let p = list.first(where: { $0.x < 0 || $0.y < 0 || $0.x >= w || $0.y >= h }) {
                throw NodeError("\(file): a point of class '\(className)' at (\(p.x), \(p.y)) lies outside the \(width) × \(height) slide; are these the annotations of another slide, or not in level-0 pixels?")
            }
        }
        for region in regions {
            let at = "\(file): feature \(region.feature) (class \(region.className))"
            if region.maxX < 0 || region.maxY < 0 || region.minX >= w || region.minY >= h {
                throw NodeError("\(at): the polygon lies outside the \(width) × \(height) slide")
            }
            for (r, ring) in region.rings.enumerated() {
                if let (i, j) = Self.selfIntersection(ring) {
                    throw NodeError("\(at): ring \(r) crosses itself (edge \(i) from (\(ring[i].x), \(ring[i].y)) and edge \(j) from (\(ring[j].x), \(ring[j].y)))")
                }
            }
            guard region.area > 0 else { throw NodeError("\(at): the polygon has no area") }
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
                  let y = attributes["Y"].flatMap({ Double($0.replacingOccurrences(of: ",", with: ".")) }) else {
                error = "a Coordinate without numeric X and Y"; parser.abortParsing(); return
            }
            let order = attributes["Order"].flatMap { Int($0) } ?? annotations[annotations.count - 1].coordinates.count
            annotations[annotations.count - 1].coordinates.append((order, PlanePoint(x, y)))
        default:
            break
        }
    }
}
