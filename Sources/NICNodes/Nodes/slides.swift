import Flow
import Foundation

/// `slides`: a cohort folder as a SlideSet (the source of every pathology pipeline).
public struct SlidesSource: NodeType {
    public static let name = "slides"
    public static let version = 1
    public static let summary = "Opens every slide of a folder (any OpenSlide format) and joins labels.csv: a SlideSet."
    public static let outputs = [PortSpec("slides", .slideSet, doc: "slides.csv: path, stem, vendor, size, mpp, levels, quickhash, labels")]
    public struct Params: NodeParams {
        @Param(doc: "the folder of slides") var dir: DirectoryParam
        @Param(doc: "glob on file names, e.g. '*.svs'") var pattern = "*"
        @Param(doc: "labels.csv: slide (file stem), patient, label columns (time, event for survival)") var labels: FileParam? = nil
        @Param(doc: "µm/px of level 0 for slides without that metadata (overrides the file's value)", .within(0.01, 1000)) var mpp: Double? = nil
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let set = try SlideSet.scan(directory: params.dir.url, pattern: params.pattern, labels: params.labels?.url, mpp: params.mpp)
        try set.write(to: try context.output("slides"))
        context.progress(set.slides.count, of: set.slides.count, unit: "slides")
    }
}
