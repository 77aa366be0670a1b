import Flow
import Foundation
import Slides

extension PortType {
    /// A cohort's slides: `slides.csv` (see `SlideSet`).
    public static let slideSet: PortType = "SlideSet"
}

/// One slide of a cohort with its properties and (optional) labels.
public struct SlideEntry: Sendable, Equatable {
    public var path: String
    public var stem: String
    public var vendor: String
    public var width: Int
    public var height: Int
    public var mpp: Double
    public var mppSource: String
    public var levels: Int
    /// OpenSlide's quickhash-1 (content-derived, cheap even for gigabyte files).
    public var quickhash: String
    /// labels.csv columns for this slide (patient, and any label columns); empty strings = missing.
    public var labels: [String: String]

    /// Opens the slide with the resolution the slide set settled on (metadata or the user's override).
    public func open() throws -> Slide {
        try Slide(url: URL(fileURLWithPath: path), mpp: mppSource == ResolutionSource.override.rawValue ? mpp : nil)
    }
}

/// The content of a `SlideSet` port: `slides.csv` with columns
/// `path, stem, vendor, width, height, mpp, mpp_source, levels, quickhash` then the label columns of
/// labels.csv (`patient`, ...) when one was given. pandas: `pd.read_csv(folder + "/slides.csv")`.
public struct SlideSet: Sendable {
    public static let fixedColumns = ["path", "stem", "vendor", "width", "height", "mpp", "mpp_source", "levels", "quickhash"]
    public var slides: [SlideEntry]
    public var labelColumns: [String]

    public init(slides: [SlideEntry], labelColumns: [String]) {
        self.slides = slides
        self.labelColumns = labelColumns
    }

    public subscript(stem: String) -> SlideEntry? { slides.first { $0.stem == stem } }

    public func write(to folder: URL) throws {
        var rows: [[String]] = []
        for s in slides {
            rows.append([s.path, s.stem, s.vendor, String(s.width), String(s.height), String(s.mpp), s.mppSource, String(s.levels), s.quickhash]
                        + labelColumns.map { s.labels[$0] ?? "" })
        }
        try CSVTable(columns: SlideSet.fixedColumns + labelColumns, rows: rows).write(to: folder.appendingPathComponent("slides.csv"))
    }

    public static func read(from folder: URL) throws -> SlideSet {
        let url = folder.appendingPathComponent("slides.csv")
        let table = try CSVTable.read(url)
        let missing = fixedColumns.filter { table.columnIndex($0) == nil }
        guard missing.isEmpty else { throw NodeError("\(url.path):1: not a SlideSet, missing columns \(missing.joined(separator: ", "))") }
        let labelColumns = table.columns.filter { !fixedColumns.contains($0) }
        var slides: [SlideEntry] = []
        for (n, row) in table.rows.enumerated() {
            func v(_ c: String) -> String { row[table.columnIndex(c)!] }  // invariant: slides.csv is written by this node with these columns
            guard let w = Int(v("width")), let h = Int(v("height")), let mpp = Double(v("mpp")), let levels = Int(v("levels")) else {
                throw NodeError("\(url.path):\(n + 2): bad number in width/height/mpp/levels")
            }
            var labels: [String: String] = [:]
            for c in labelColumns { labels[c] = v(c) }
            slides.append(SlideEntry(path: v("path"), stem: v("stem"), vendor: v("vendor"), width: w, height: h, mpp: mpp,
                                     mppSource: v("mpp_source"), levels: levels, quickhash: v("quickhash"), labels: labels))
        }
        return SlideSet(slides: slides, labelColumns: labelColumns)
    }

    /// Lists and opens the slides of a folder and joins labels.csv (`slide` = file stem, `patient`, then
    /// label columns). Every slide must open; every labels.csv row must name a slide that exists; a slide
    /// without a labels row is kept with empty labels (usable for unsupervised steps).
    public static func scan(directory: URL, pattern: String, labels: URL?, mpp: Double?) throws -> SlideSet {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { fnmatch(pattern, $0, 0) == 0 && !$0.hasPrefix(".") }.sorted()
        } catch {
            throw NodeError("\(directory.path): cannot list the slide folder: \(error.localizedDescription)")
        }
        guard !names.isEmpty else { throw NodeError("\(directory.path): no slides matching '\(pattern)'") }
        var entries: [SlideEntry] = []
        var stems = Set<String>()
        for name in names {
            let url = directory.appendingPathComponent(name)
            let slide: Slide
            do {
                slide = try Slide(url: url, mpp: mpp)
            } catch let error as SlideError {
                throw NodeError(error.description)
            }
            let stem = (name as NSString).deletingPathExtension
            guard stems.insert(stem).inserted else {
                throw NodeError("\(url.path): another slide in \(directory.path) has the same stem '\(stem)'; labels.csv could not tell them apart")
            }
            entries.append(SlideEntry(path: url.path, stem: stem, vendor: slide.vendor, width: slide.width, height: slide.height, mpp: slide.mpp,
                                      mppSource: slide.resolutionSource.rawValue, levels: slide.levels.count,
                                      quickhash: slide.properties["openslide.quickhash-1"] ?? "", labels: [:]))
        }
        let set = SlideSet(slides: entries, labelColumns: [])
        guard let labels else { return set }
        return try set.joiningLabels(labels, lookedIn: "matching '\(pattern)' in \(directory.path)")
    }

    /// Joins labels.csv (`slide` = file stem, `patient`, then label columns) to slides without labels.
    /// Every row must name a slide of the set (`lookedIn` says where slides were looked for); a slide
    /// without a row keeps empty labels.
    public func joiningLabels(_ labels: URL, lookedIn: String) throws -> SlideSet {
        try joiningLabels(labels, lookedIn: lookedIn, skipUnknown: false).set
    }

    /// With `skipUnknown`, rows naming a slide that has no file are left out and returned; without it
    /// every such row is listed in one error.
    public func joiningLabels(_ labels: URL, lookedIn: String, skipUnknown: Bool) throws -> (set: SlideSet, skipped: [String]) {
        var entries = slides
        let table = try CSVTable.read(labels)
        for required in ["slide", "patient"] where table.columnIndex(required) == nil {
            throw NodeError("\(labels.path):1: missing column '\(required)'; found \(table.columns.joined(separator: ", "))")
        }
        let slideColumn = table.columnIndex("slide")!  // invariant: 'slide' checked as a required column above
        let labelColumns = table.columns.filter { $0 != "slide" }
        var seen: [String: Int] = [:]
        var unknown: [(line: Int, stem: String)] = []
        for (n, row) in table.rows.enumerated() {
            let line = n + 2
            let stem = row[slideColumn].trimmingCharacters(in: .whitespaces)
            guard let index = entries.firstIndex(where: { $0.stem == stem }) else {
                unknown.append((line, stem))
                continue
            }
            if let first = seen[stem] { throw NodeError("\(labels.path):\(line):1: slide '\(stem)' listed twice (first on line \(first))") }
            seen[stem] = line
            for c in labelColumns { entries[index].labels[c] = row[table.columnIndex(c)!] }  // invariant: label columns taken from the table's columns
            if entries[index].labels["patient", default: ""].isEmpty {
                throw NodeError("\(labels.path):\(line):\(table.columnIndex("patient")! + 1): empty patient for slide '\(stem)'")
            }
        }
        if !unknown.isEmpty && !skipUnknown {
            let listed = unknown.prefix(10).map { "'\($0.stem)' (line \($0.line))" }.joined(separator: ", ")
            throw NodeError("\(labels.path):\(unknown[0].line):1: unknown slide\(unknown.count > 1 ? "s" : "") \(listed)\(unknown.count > 10 ? " and \(unknown.count - 10) more" : ""): no file with that stem \(lookedIn)")
        }
        return (SlideSet(slides: entries, labelColumns: labelColumns), unknown.map(\.stem))
    }
}
