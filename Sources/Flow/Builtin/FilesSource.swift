import Foundation

/// Lists the files of a folder that match a pattern (e.g. every `*.svs` slide). Downstream nodes read
/// the files where they are; the cache key covers their content, so editing a file reruns what reads it.
public struct FilesSource: NodeType {
    public static let name = "files"
    public static let version = 1
    public static let summary = "Lists files in a folder (glob pattern) as a FileSet: path, name, stem, size, sha256."
    public static let outputs = [PortSpec("files", .fileSet, doc: "files.csv with one row per file")]
    public struct Params: NodeParams {
        @Param(doc: "the folder to list") var dir: DirectoryParam
        @Param(doc: "glob on file names, e.g. '*.svs'; '{a,b}' not supported, use several patterns") var pattern = "*"
        @Param(doc: "also list files in sub-folders") var recursive = false
        @Param(doc: "succeed when nothing matches") var allowEmpty = false
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let dir = params.dir.url
        let pattern = params.pattern
        let recursive = params.recursive
        let all = try FileHasher.listFiles(under: dir)
        let matching = all.filter { relative in
            (recursive || !relative.contains("/")) && fnmatch(pattern, (relative as NSString).lastPathComponent, 0) == 0
        }
        if matching.isEmpty && !params.allowEmpty {
            throw NodeError("no files matching '\(pattern)' in \(dir.path)\(recursive ? " (recursively)" : "")")
        }
        var rows: [[String]] = []
        for (i, relative) in matching.enumerated() {
            try context.checkCancellation()
            let url = dir.appendingPathComponent(relative)
            let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.int64Value ?? 0
            let name = url.lastPathComponent
            rows.append([url.path, name, (name as NSString).deletingPathExtension, String(size), try context.contentHash(of: url)])
            context.progress(i + 1, of: matching.count, unit: "files")
        }
        try CSVTable(columns: ["path", "name", "stem", "size", "sha256"], rows: rows)
            .write(to: try context.output("files").appendingPathComponent("files.csv"))
    }
}
