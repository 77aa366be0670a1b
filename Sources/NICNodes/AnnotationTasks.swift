import Flow
import Foundation
import NICBasics
import Yams

/// Patch tasks derived from slide annotations, declared in a YAML file under `nodes/tasks/`:
///
/// ```yaml
/// patch_um: 64                 # patch side in µm (the tile sampler's size × mpp)
/// samples: 16                  # region tasks: the patch is judged on a samples × samples lattice
/// tasks:
///   tissue:  {kind: region, classes: [tumour, stroma], min_coverage: 0.5, stride_um: 64, max_per_class: 0}
///   mitosis: {kind: points, class: mitosis, radius_um: 8, negatives: {inside: [tumour], ratio: 1}}
///   nuclei:  {kind: count, class: nucleus, inside: [tumour, stroma], stride_um: 64, max_per_slide: 60}
/// ```
/// - region: patches on the stride grid (anchored at the slide's corner, like the compressor's cells)
///   over the task's polygons; label = the class covering most of the patch (a lattice point inside
///   polygons of several classes counts for the smallest one: a nested annotation refines the one
///   around it; holes are outside); kept when at least `min_coverage` of the patch is covered.
///   `max_per_class` (0 = all) keeps a seeded sample per slide and class.
/// - points: a patch centred on each point of `class` is a positive ("1": a point lies within
///   `radius_um` of its centre); negatives ("0") are drawn uniformly inside regions of the `inside`
///   classes — hard negatives, e.g. tumour without a mitosis — at `ratio` negatives per positive,
///   seeded, each with no point of the class within `radius_um` of its centre.
/// - count: patches on the stride grid whose centre lies in a region of the `inside` classes; label =
///   the number of points of `class` inside the patch. `max_per_slide` (0 = all) keeps a seeded sample.
///   A slide with no point object at all (of the counted object types) gets no count patches: its
///   zeros would say "no nuclei" where nobody looked.
///
/// Classes (QuPath's rule for derived classes): a task's class name matches an annotation class whose
/// full name ("Tumor: Positive") or any one of whose parts ("Tumor", "Positive") it equals, ignoring
/// case (a spelling that differs only in case is logged); the full name is tried first. The patch's
/// label is the task's spelling. `class: "*"` in a count task counts every object, classified or not.
/// Regions come from annotation objects only; `objects:` (annotation, detection, cell) says whose
/// points a points/count task takes: annotations for points tasks, all three for count tasks by default.
/// `exclude:` (top level, class names or globs such as `Ignore*`, matched like task classes) marks
/// regions never sampled: lattice points inside them are not covered, and no count patch or negative
/// is centred in them.
public struct AnnotationTasks: Sendable {
    public enum Kind: Sendable, Equatable {
        case region(classes: [String], minCoverage: Double, strideUM: Double, maxPerClass: Int)
        case points(className: String, radiusUM: Double, negativesInside: [String], ratio: Double)
        case count(className: String, inside: [String], strideUM: Double, maxPerSlide: Int)
    }

    public struct Task: Sendable, Equatable {
        public var name: String
        public var kind: Kind
        /// QuPath object types whose points the task takes; nil: annotations for points tasks,
        /// annotations, detections and cells for count tasks.
        public var objects: Set<String>?
        public init(name: String, kind: Kind, objects: Set<String>? = nil) { self.name = name; self.kind = kind; self.objects = objects }

        var pointObjects: Set<String> {
            if let objects { return objects }
            if case .count = kind { return ["annotation", "detection", "cell"] }
            return ["annotation"]
        }
    }

    public var patchUM: Double
    public var samples: Int
    public var tasks: [Task]
    /// Classes (or globs) whose regions are never sampled.
    public var exclude: [String]

    public init(patchUM: Double, samples: Int = 16, tasks: [Task], exclude: [String] = []) {
        self.patchUM = patchUM
        self.samples = samples
        self.tasks = tasks
        self.exclude = exclude
    }

    static let objectTypes: Set<String> = ["annotation", "detection", "cell"]

    public static func read(_ url: URL) throws -> AnnotationTasks {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw NodeError("\(url.path): cannot read: \(error.localizedDescription)") }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw NodeError("\(url.path): not YAML: \(error)") }
        return try YAMLValueDecoder.decode(File.self, from: root ?? ParamValue.null.yamlNode, file: url.path).tasks
    }

    /// A referenced task file, from the text the node was keyed on.
    static func read(_ reference: Reference) throws -> AnnotationTasks {
        try File.decode(reference).tasks
    }
}

// MARK: Labelling

extension SlideAnnotations {
    /// The class covering most of the square patch (side `side` level-0 px) among `classes` (empty: all),
    /// judged on a samples × samples lattice, and the covered fraction.
    public func regionLabel(centre: PlanePoint, side: Double, classes: Set<String>, samples: Int,
                            excluded: [AnnotatedRegion] = []) -> (label: String?, coverage: Double) {
        let half = side / 2
        let candidates = regions.filter {
            (classes.isEmpty || classes.contains($0.className)) && $0.maxX >= centre.x - half && $0.minX <= centre.x + half
                && $0.maxY >= centre.y - half && $0.minY <= centre.y + half
        }.sorted { $0.area < $1.area }  // innermost first
        guard !candidates.isEmpty else { return (nil, 0) }
        let near = excluded.filter { $0.maxX >= centre.x - half && $0.minX <= centre.x + half && $0.maxY >= centre.y - half && $0.minY <= centre.y + half }
        var votes: [String: Int] = [:]
        var covered = 0
        for i in 0..<samples {
            for j in 0..<samples {
                let p = PlanePoint(centre.x - half + (Double(j) + 0.5) * side / Double(samples), centre.y - half + (Double(i) + 0.5) * side / Double(samples))
                if !near.contains(where: { $0.contains(p) }), let region = candidates.first(where: { $0.contains(p) }) {
                    votes[region.className, default: 0] += 1
                    covered += 1
                }
            }
        }
        let label = votes.max { a, b in a.value != b.value ? a.value < b.value : a.key > b.key }?.key
        return (label, Double(covered) / Double(samples * samples))
    }

    /// Whether a point of `className` lies within `radius` level-0 px of `centre`.
    public func hasPoint(_ className: String, within radius: Double, of centre: PlanePoint) -> Bool {
        (points[className] ?? []).contains { ($0.x - centre.x) * ($0.x - centre.x) + ($0.y - centre.y) * ($0.y - centre.y) <= radius * radius }
    }

    /// Points of `className` inside the square patch [x − side/2, x + side/2) × [y − side/2, y + side/2).
    public func count(_ className: String, centre: PlanePoint, side: Double) -> Int {
        let half = side / 2
        return (points[className] ?? []).filter { $0.x >= centre.x - half && $0.x < centre.x + half && $0.y >= centre.y - half && $0.y < centre.y + half }.count
    }

    /// Whether `p` lies in a region of one of `classes`.
    public func inRegion(_ p: PlanePoint, of classes: Set<String>) -> Bool {
        regions.contains { classes.contains($0.className) && $0.contains(p) }
    }
}

/// One row of patches.csv: the patch centre (level-0 px), the task and the label.
public struct AnnotatedPatch: Sendable, Equatable {
    public var x: Int, y: Int
    public var task: String
    public var label: String
}

extension AnnotationTasks {
    /// The patches of one slide of width × height level-0 px at `mpp` µm/px (see `plan`).
    public func patches(_ annotations: SlideAnnotations, width: Int, height: Int, mpp: Double, seed: UInt64, slideIndex: Int)
        throws -> (patches: [AnnotatedPatch], dropped: [String: Int]) {
        let planned = try plan(annotations, width: width, height: height, mpp: mpp, seed: seed, slideIndex: slideIndex)
        return (planned.patches, planned.dropped)
    }

    /// Whether a task's class name matches an annotation class (see the type's doc): 2 for the full
    /// name, 1 for one of its parts, 0 for neither; case is ignored.
    static func match(_ taskClass: String, name: String, parts: [String]) -> Int {
        if taskClass.caseInsensitiveCompare(name) == .orderedSame { return 2 }
        return parts.contains { $0.caseInsensitiveCompare(taskClass) == .orderedSame } ? 1 : 0
    }

    /// Whether an `exclude` entry (a class name or a glob) names the class, by full name or a part.
    static func excludes(_ pattern: String, name: String, parts: [String]) -> Bool {
        ([name] + parts).contains { fnmatch(pattern.lowercased(), $0.lowercased(), 0) == 0 }
    }

    /// The patches of one slide of width × height level-0 px at `mpp` µm/px, the positives dropped near
    /// the edge per task, and notes for the log (case-only spelling differences, skipped count tasks,
    /// edge drops). Patches must lie inside the slide (the tile sampler reads them whole).
    public func plan(_ annotations: SlideAnnotations, width: Int, height: Int, mpp: Double, seed: UInt64, slideIndex: Int)
        throws -> (patches: [AnnotatedPatch], dropped: [String: Int], notes: [String]) {
        let side = patchUM / mpp, half = side / 2
        var notes: [String] = []
        var spellings: Set<String> = []
        // The task class an annotation class is read as, trying every class's full name before parts.
        func resolve(_ classes: [String], _ name: String, _ parts: [String]) -> String? {
            for level in [2, 1] {
                if let c = classes.first(where: { Self.match($0, name: name, parts: parts) == level }) {
                    if level == 2 ? c != name : !parts.contains(c) { spellings.insert("'\(name)' read as '\(c)'") }
                    return c
                }
            }
            return nil
        }
        let isExcluded = annotations.regions.map { r in exclude.contains { Self.excludes($0, name: r.className, parts: r.parts) } }
        let excluded = annotations.regions.indices.filter { isExcluded[$0] }.map { annotations.regions[$0] }
        let usable = annotations.regions.indices.filter { !isExcluded[$0] }.map { annotations.regions[$0] }
        func inExcluded(_ c: PlanePoint) -> Bool { excluded.contains { $0.contains(c) } }
        // A copy of the slide's annotations in the task's own class names.
        func view(regionClasses: [String], pointClass: String?, objects: Set<String>) -> SlideAnnotations {
            var v = SlideAnnotations(file: annotations.file)
            v.regions = usable.compactMap { region in
                guard !regionClasses.isEmpty else { return region }
                guard let c = resolve(regionClasses, region.className, region.parts) else { return nil }
                var renamed = region
                renamed.className = c
                return renamed
            }
            if let pointClass {
                var list: [PlanePoint] = []
                func take(_ source: [String: [PlanePoint]], parts: [String: [String]]) {
                    for name in source.keys.sorted() {
                        let matches = pointClass == "*" || (!name.isEmpty && resolve([pointClass], name, parts[name] ?? [name]) != nil)
                        if matches { list += source[name]! }  // invariant: iterating its keys
                    }
                }
                if objects.contains("annotation") { take(annotations.points, parts: annotations.classParts) }
                if objects.contains("detection") { take(annotations.detections, parts: annotations.detectionParts) }
                if objects.contains("cell") { take(annotations.cells, parts: annotations.detectionParts) }
                v.points[pointClass] = list
            }
            return v
        }
        // Judged on the rounded centre patches.csv records.
        func fits(_ c: PlanePoint) -> Bool {
            let x = c.x.rounded(), y = c.y.rounded()
            return x - half >= 0 && y - half >= 0 && x + half <= Double(width) && y + half <= Double(height)
        }
        func row(_ c: PlanePoint, _ task: String, _ label: String) -> AnnotatedPatch {
            AnnotatedPatch(x: Int(c.x.rounded()), y: Int(c.y.rounded()), task: task, label: label)
        }
        var out: [AnnotatedPatch] = []
        var dropped: [String: Int] = [:]
        for (t, task) in tasks.enumerated() {
            var rng = SplitMix64(seed: seed, slideIndex, t)
            switch task.kind {
            case let .region(classes, minCoverage, strideUM, maxPerClass):
                let v = view(regionClasses: classes, pointClass: nil, objects: [])
                let chosen = Set(classes)
                var byClass: [String: [AnnotatedPatch]] = [:]
                for c in gridCentres(v, classes: chosen, stride: strideUM / mpp, width: width, height: height, half: half) {
                    let (label, coverage) = v.regionLabel(centre: c, side: side, classes: chosen, samples: samples, excluded: excluded)
                    if let label, coverage >= minCoverage, coverage > 0 { byClass[label, default: []].append(row(c, task.name, label)) }
                }
                for key in byClass.keys.sorted() {
                    let list = byClass[key]!  // invariant: iterating its keys
                    out += maxPerClass > 0 && list.count > maxPerClass ? Array(list.shuffled(using: &rng).prefix(maxPerClass)) : list
                }
            case let .points(className, radiusUM, inside, ratio):
                let v = view(regionClasses: inside, pointClass: className, objects: task.pointObjects)
                let radius = radiusUM / mpp
                let all = v.points[className] ?? []
                let positives = all.filter(fits)
                dropped[task.name] = all.count - positives.count
                if all.count > positives.count {
                    notes.append("task '\(task.name)': \(all.count - positives.count) of \(all.count) '\(className)' point(s) within half a patch (\(patchUM / 2) µm) of the slide's edge dropped")
                }
                out += positives.map { row($0, task.name, "1") }
                let wanted = Int((ratio * Double(positives.count)).rounded())
                let areas = v.regions.filter { inside.contains($0.className) }
                var negatives = 0, attempts = 0
                let total = areas.reduce(0) { $0 + $1.area }
                while negatives < wanted && total > 0 && attempts < max(wanted, 1) * 1000 {
                    attempts += 1
                    // A region with probability ∝ its area, then a uniform point of its bounding box.
                    var pick = rng.uniform(0, total)
                    let region = areas.first { pick -= $0.area; return pick <= 0 } ?? areas[areas.count - 1]
                    let c = PlanePoint(rng.uniform(region.minX, region.maxX).rounded(), rng.uniform(region.minY, region.maxY).rounded())
                    guard region.contains(c), fits(c), !v.hasPoint(className, within: radius, of: c), !inExcluded(c) else { continue }
                    out.append(row(c, task.name, "0"))
                    negatives += 1
                }
                if negatives < wanted {
                    throw NodeError("\(annotations.file): task '\(task.name)': found \(negatives) of \(wanted) negatives inside \(inside.joined(separator: "/")) regions without a '\(className)' point within \(radiusUM) µm; lower the ratio or annotate more \(inside.joined(separator: "/"))")
                }
            case let .count(className, inside, strideUM, maxPerSlide):
                let v = view(regionClasses: inside, pointClass: className, objects: task.pointObjects)
                let objects = task.pointObjects
                let anyPoints = (objects.contains("annotation") && annotations.points.values.contains { !$0.isEmpty })
                    || (objects.contains("detection") && annotations.detections.values.contains { !$0.isEmpty })
                    || (objects.contains("cell") && annotations.cells.values.contains { !$0.isEmpty })
                guard anyPoints else {
                    notes.append("task '\(task.name)': no point objects (\(objects.sorted().joined(separator: "/"))) on this slide; no count patches (zeros would claim nobody-looked areas are empty)")
                    continue
                }
                let chosen = Set(inside)
                // Points in side × side buckets: a cell detection has hundreds of thousands, and a patch
                // spans at most 2 × 2 buckets. Points are on the slide (checked when read).
                var buckets: [Int: [PlanePoint]] = [:]
                let across = Int((Double(width) / side).rounded(.up)) + 1
                func bucket(_ x: Double, _ y: Double) -> Int { Int((y / side).rounded(.down)) * across + Int((x / side).rounded(.down)) }
                for p in v.points[className] ?? [] { buckets[bucket(p.x, p.y), default: []].append(p) }
                func count(_ c: PlanePoint) -> Int {
                    let x0 = c.x - half, y0 = c.y - half, x1 = c.x + half, y1 = c.y + half
                    var n = 0
                    for j in Int((max(0, y0) / side).rounded(.down))...Int((max(0, y1) / side).rounded(.down)) {
                        for i in Int((max(0, x0) / side).rounded(.down))...Int((max(0, x1) / side).rounded(.down)) {
                            n += (buckets[j * across + i] ?? []).filter { $0.x >= x0 && $0.x < x1 && $0.y >= y0 && $0.y < y1 }.count
                        }
                    }
                    return n
                }
                var list: [AnnotatedPatch] = []
                for c in gridCentres(v, classes: chosen, stride: strideUM / mpp, width: width, height: height, half: half)
                where v.inRegion(c, of: chosen) && !inExcluded(c) {
                    list.append(row(c, task.name, String(count(c))))
                }
                out += maxPerSlide > 0 && list.count > maxPerSlide ? Array(list.shuffled(using: &rng).prefix(maxPerSlide)) : list
            }
        }
        if !spellings.isEmpty {
            notes.append("class names that differ from the task file only in case: \(spellings.sorted().joined(separator: ", "))")
        }
        return (out, dropped, notes)
    }

    /// Centres of the stride grid (anchored at the slide's corner) over the bounding box of the regions of
    /// `classes` (all regions when empty), whose patch fits on the slide.
    private func gridCentres(_ annotations: SlideAnnotations, classes: Set<String>, stride: Double, width: Int, height: Int, half: Double) -> [PlanePoint] {
        let regions = annotations.regions.filter { classes.isEmpty || classes.contains($0.className) }
        guard !regions.isEmpty, stride > 0 else { return [] }
        let minX = max(half, regions.map(\.minX).min()!), maxX = min(Double(width) - half, regions.map(\.maxX).max()!)  // invariant: not empty
        let minY = max(half, regions.map(\.minY).min()!), maxY = min(Double(height) - half, regions.map(\.maxY).max()!)
        guard minX <= maxX, minY <= maxY else { return [] }
        var out: [PlanePoint] = []
        // Centres at (k + ½)·stride: the cells of a stride grid from the slide's corner.
        for j in Int((minY / stride - 0.5).rounded(.down))...Int((maxY / stride - 0.5).rounded(.up)) {
            for i in Int((minX / stride - 0.5).rounded(.down))...Int((maxX / stride - 0.5).rounded(.up)) {
                let c = PlanePoint(((Double(i) + 0.5) * stride).rounded(), ((Double(j) + 0.5) * stride).rounded())
                if c.x >= minX && c.x <= maxX && c.y >= minY && c.y <= maxY { out.append(c) }
            }
        }
        return out
    }
}

/// A task file as written, decoded by the engine's YAML decoder: `nic validate` reads it as the node
/// will, and a misspelt key, a wrong type or a value out of range is an error at its line.
extension AnnotationTasks {
    struct File: YAMLDecodable {
        let tasks: AnnotationTasks
        enum CodingKeys: String, CodingKey { case name, patchUM = "patch_um", samples, tasks, exclude }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            _ = c.contains(.name)  // a label for people; any value
            let exclude = try c.classNames(.exclude)
            let patchUM = try c.number(.patchUM, positive: true)
            let samples = Int(try c.number(.samples, default: 16, positive: true))
            let byName = try c.nestedContainer(keyedBy: TaskName.self, forKey: .tasks)
            // In the file's order: a task's seeded draws are numbered by its place.
            let names = byName.allKeys
            guard !names.isEmpty else {
                throw DecodingError.dataCorruptedError(forKey: .tasks, in: c, debugDescription: "must map task names to {kind: region|points|count, ...}")
            }
            let tasks = try names.map { name in
                guard !name.stringValue.isEmpty else {
                    throw DecodingError.dataCorruptedError(forKey: name, in: byName, debugDescription: "a task needs a name")
                }
                return try byName.decode(Written.self, forKey: name).task(name.stringValue, patchUM: patchUM)
            }
            self.tasks = AnnotationTasks(patchUM: patchUM, samples: samples, tasks: tasks, exclude: exclude)
        }
    }

    /// One task as written; each kind asks only for its own keys, so another kind's is unknown.
    struct Written: Decodable {
        /// The kind, given the task file's `patch_um` (a stride's default).
        let kind: (_ patchUM: Double) -> Kind
        let objects: Set<String>?

        enum CodingKeys: String, CodingKey {
            case kind, classes, minCoverage = "min_coverage", strideUM = "stride_um", maxPerClass = "max_per_class"
            case className = "class", radiusUM = "radius_um", negatives, objects, inside, maxPerSlide = "max_per_slide"
        }
        enum NegativesKeys: String, CodingKey { case inside, ratio }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let kinds = ["region", "points", "count"]
            let name = try c.decode(String.self, forKey: .kind)
            guard kinds.contains(name) else {
                throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "must be region, points or count, got '\(name)'\(Suggest.hint(for: name, among: kinds))")
            }
            switch name {
            case "region":
                let classes = try c.classNames(.classes), minCoverage = try c.number(.minCoverage, default: 0.5, fraction: true)
                let stride = try c.optionalNumber(.strideUM, positive: true), most = Int(try c.number(.maxPerClass, default: 0))
                kind = { .region(classes: classes, minCoverage: minCoverage, strideUM: stride ?? $0, maxPerClass: most) }
                objects = nil
            case "points":
                let className = try c.className(.className), radiusUM = try c.number(.radiusUM, positive: true)
                let negatives = try c.nestedContainer(keyedBy: NegativesKeys.self, forKey: .negatives)
                let inside = try negatives.requiredClassNames(.inside, "must name the region classes negatives are drawn from")
                let ratio = try negatives.number(.ratio, default: 1, positive: true)
                kind = { _ in .points(className: className, radiusUM: radiusUM, negativesInside: inside, ratio: ratio) }
                objects = try c.objectTypes(.objects)
            default:
                let inside = try c.requiredClassNames(.inside, "must name the region classes patches are counted in")
                let className = try c.className(.className)
                let stride = try c.optionalNumber(.strideUM, positive: true), most = Int(try c.number(.maxPerSlide, default: 0))
                kind = { .count(className: className, inside: inside, strideUM: stride ?? $0, maxPerSlide: most) }
                objects = try c.objectTypes(.objects)
            }
        }

        func task(_ name: String, patchUM: Double) -> Task { Task(name: name, kind: kind(patchUM), objects: objects) }
    }
}

/// The value rules of task files: every number is finite and ≥ 0 (a misspelt option must not fall
/// back to its default, and a negative count or distance means nothing).
private extension KeyedDecodingContainer {
    /// A number; `default` when absent (nil: required).
    func number(_ key: Key, default value: Double? = nil, positive: Bool = false, fraction: Bool = false) throws -> Double {
        if let x = try optionalNumber(key, positive: positive, fraction: fraction) { return x }
        guard let value else { throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing '\(key.stringValue)'")) }
        return value
    }

    /// A number, or nil when absent.
    func optionalNumber(_ key: Key, positive: Bool = false, fraction: Bool = false) throws -> Double? {
        guard contains(key) else { return nil }
        let x = try decode(Double.self, forKey: key)
        func bad(_ rule: String) -> DecodingError { .dataCorruptedError(forKey: key, in: self, debugDescription: "must be \(rule), got \(x)") }
        guard x.isFinite else { throw bad("a finite number") }
        if positive && x <= 0 { throw bad("positive") }
        if fraction && !(0...1).contains(x) { throw bad("within 0...1") }
        if x < 0 { throw bad("≥ 0") }
        return x
    }

    /// A class name, required.
    func className(_ key: Key) throws -> String {
        let name = try decode(String.self, forKey: key)
        guard !name.isEmpty else { throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "must be a class name, got ''") }
        return name
    }

    /// Class names: a list, or one name as a one-item list; none when absent.
    func classNames(_ key: Key) throws -> [String] {
        guard contains(key) else { return [] }
        if let one = try? decode(String.self, forKey: key) { return [one] }
        return try decode([String].self, forKey: key)
    }

    /// Class names that must be there: at least one, else `why`.
    func requiredClassNames(_ key: Key, _ why: String) throws -> [String] {
        guard contains(key) else { throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing '\(key.stringValue)'")) }
        let names = try classNames(key)
        guard !names.isEmpty else { throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: why) }
        return names
    }

    /// QuPath object types (annotation, detection, cell, in any case); nil when absent.
    func objectTypes(_ key: Key) throws -> Set<String>? {
        guard contains(key) else { return nil }
        let list = try classNames(key).map { $0.lowercased() }
        guard !list.isEmpty, list.allSatisfy(AnnotationTasks.objectTypes.contains) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "must list QuPath object types among annotation, detection, cell; got \(list)")
        }
        return Set(list)
    }
}
