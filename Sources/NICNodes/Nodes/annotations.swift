import Flow
import Foundation

/// `annotations`: a folder of slide annotations drawn in QuPath (GeoJSON export: polygons with a
/// classification, points) or ASAP (XML), one file per slide matched by stem (`<stem>.geojson`,
/// `<stem>.json`, `<stem>.geojson.gz` or `<stem>.xml`), in level-0 pixels, turned into patch tasks declared in a YAML file
/// (`nodes/tasks/*.yaml`, see `AnnotationTasks`): the patches.csv table (`slide, x, y, task, label`)
/// the tile sampler takes, so a pipeline swaps a hand-made patches.csv for annotations in one line.
public struct AnnotationsSource: NodeType {
    public static let name = "annotations"
    public static let version = 2
    public static let summary = "Derives patch tasks (region majority, point detection with hard negatives, counts) from QuPath GeoJSON / ASAP XML annotations: a patches.csv Table."
    public static let inputs = [PortSpec("slides", .slideSet, doc: "the cohort (slide sizes and µm/px)")]
    public static let outputs = [PortSpec("annotations", .table, doc: "patches.csv rows: slide, x, y, task, label (x, y = level-0 patch centre)")]

    public struct Params: NodeParams {
        @Param(doc: "the folder of annotation files, one per slide: <stem>.geojson / .json (QuPath) or <stem>.xml (ASAP)") var dir: DirectoryParam
        @Param(doc: "the task file, e.g. nodes/tasks/qupath-synthetic.yaml", schema: AnnotationTasks.File.self) var tasks: Reference
        @Param(doc: "seed of negative sampling and per-slide subsampling") var seed = 1
        public init() {}
    }

    public init() {}

    static let extensions = ["geojson", "json", "xml"]

    /// The slide stem of an annotation file name, or nil when it is not one (`a.geojson.gz` → `a`).
    public static func stem(of name: String) -> String? {
        guard !name.hasPrefix(".") else { return nil }
        var base = name as NSString
        if base.pathExtension.lowercased() == "gz" { base = base.deletingPathExtension as NSString }
        guard extensions.contains(base.pathExtension.lowercased()) else { return nil }
        return base.deletingPathExtension
    }

    /// Per slide, each task (`task`) or region class (`task=class`) that other slides give patches for
    /// and this one gives none for — often a spelling (`Tumour` among `Tumor` slides) — naming the
    /// slide's own classes. `found`: per slide, its classes and the task / task=class keys it gave.
    public static func missingWarnings(_ found: [(stem: String, classes: [String], gave: Set<String>)]) -> [String] {
        let given = found.reduce(into: [String: Int]()) { counts, slide in for k in slide.gave { counts[k, default: 0] += 1 } }
        var out: [String] = []
        for slide in found {
            let missingTasks = Set(given.keys.filter { !slide.gave.contains($0) && !$0.contains("=") })
            // A missing task says it all; its classes are not listed again.
            let missing = given.keys.filter { key in
                !slide.gave.contains(key) && (!key.contains("=") || !missingTasks.contains(String(key.split(separator: "=")[0])))
            }.sorted()
            for key in missing {
                let what = key.contains("=") ? "class \(key)" : "task '\(key)'"
                out.append("slide '\(slide.stem)': no patches for \(what) that \(given[key, default: 0]) other slide(s) have; this slide's classes: \(slide.classes.isEmpty ? "none" : slide.classes.joined(separator: ", "))")
            }
        }
        return out
    }

    public func run(_ context: NodeContext, _ params: Params) throws {
        let slides = try SlideSet.read(from: try context.input("slides"))
        let tasks = try AnnotationTasks.read(params.tasks)
        let folder = params.dir.url
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { Self.stem(of: $0) != nil }.sorted()
        } catch {
            throw NodeError("\(folder.path): cannot list the annotations folder: \(error.localizedDescription)")
        }
        var byStem: [String: String] = [:]
        for name in files {
            let stem = Self.stem(of: name)!  // invariant: files are filtered on having a stem
            if let other = byStem[stem] { throw NodeError("\(folder.path): '\(other)' and '\(name)' both annotate slide '\(stem)'; keep one") }
            byStem[stem] = name
        }
        let unknown = byStem.keys.filter { slides[$0] == nil }.sorted()
        if !unknown.isEmpty {
            context.logger.warning("\(folder.path): \(unknown.count) annotation file(s) match no slide of the cohort: \(unknown.prefix(5).joined(separator: ", "))")
        }
        var rows: [[String]] = []
        var summary: [String: Any] = [:]
        var unannotated: [String] = []
        // Per slide: the classes its annotations have, and the task=label pairs it gave patches for.
        var found: [(stem: String, classes: [String], gave: Set<String>)] = []
        let regionTasks = Set(tasks.tasks.filter { if case .region = $0.kind { return true } else { return false } }.map(\.name))
        for (index, entry) in slides.slides.enumerated() {
            try context.checkCancellation()
            guard let name = byStem[entry.stem] else { unannotated.append(entry.stem); continue }
            let annotations = try SlideAnnotations.read(folder.appendingPathComponent(name), width: entry.width, height: entry.height)
            for warning in annotations.warnings { context.logger.warning("\(warning)") }
            guard entry.mpp > 0 else { throw NodeError("slide '\(entry.stem)': unknown µm/px; give the slides source an 'mpp'") }
            let (patches, dropped, notes) = try tasks.plan(annotations, width: entry.width, height: entry.height, mpp: entry.mpp,
                                                           seed: UInt64(bitPattern: Int64(params.seed)), slideIndex: index)
            for note in notes { context.logger.warning("\(annotations.file): \(note)") }
            let classes = Set(annotations.regions.map(\.className)).union(annotations.points.keys).sorted()
            found.append((entry.stem, classes, Set(patches.filter { regionTasks.contains($0.task) }.map { "\($0.task)=\($0.label)" }).union(patches.map(\.task))))
            rows += patches.map { [entry.stem, String($0.x), String($0.y), $0.task, $0.label] }
            // Patches per task and class; count tasks' labels are numbers, summed up per task.
            let countTasks = Set(tasks.tasks.filter { if case .count = $0.kind { return true } else { return false } }.map(\.name))
            var counts: [String: Int] = [:]
            for p in patches { counts[countTasks.contains(p.task) ? p.task : "\(p.task)=\(p.label)", default: 0] += 1 }
            summary[entry.stem] = ["file": name, "patches": counts, "dropped_near_edge": dropped.filter { $0.value > 0 },
                                   "skipped_features": annotations.warnings.count, "object_types": annotations.objectTypes] as [String: Any]
            context.progress(index + 1, of: slides.slides.count, unit: "slides")
        }
        let allClasses = Set(found.flatMap(\.classes)).sorted()
        guard !rows.isEmpty else {
            let classes = allClasses.isEmpty ? "" : "; the files' classes: \(allClasses.prefix(20).joined(separator: ", "))"
            throw NodeError("\(folder.path): no patches: \(byStem.isEmpty ? "no .geojson, .json, .geojson.gz or .xml files" : "the annotations of the \(slides.slides.count - unannotated.count) matched slide(s) give none for the tasks of \(params.tasks.url.lastPathComponent)\(classes)")")
        }
        for warning in Self.missingWarnings(found) { context.logger.warning("\(warning)") }
        if !unannotated.isEmpty { context.logger.info("\(unannotated.count) slide(s) without annotations: \(unannotated.prefix(5).joined(separator: ", "))") }
        let out = try context.output("annotations")
        try CSVTable(columns: ["slide", "x", "y", "task", "label"], rows: rows).writePort(out)
        summary["_unannotated_slides"] = unannotated
        try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]).write(to: out.appendingPathComponent("summary.json"))
    }
}
