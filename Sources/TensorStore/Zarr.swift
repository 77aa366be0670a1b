import Foundation

/// Hierarchy-level helpers: groups and discovery of arrays.
public enum Zarr {
    /// Creates (or overwrites the metadata of) a zarr v3 group at `url`.
    public static func createGroup(at url: URL, attributes: [String: ZarrJSON] = [:]) throws {
        try FileIO.makeDirectories(url.path)
        let json: ZarrJSON = ["zarr_format": 3, "node_type": "group", "attributes": .map(attributes)]
        try FileIO.writeAtomically(url.appendingPathComponent("zarr.json").path, Array((json.serialized() + "\n").utf8))
    }

    /// The parsed zarr.json of any node (array or group); the error names the file.
    public static func readNodeMetadata(at url: URL) throws -> ZarrJSON {
        let path = url.appendingPathComponent("zarr.json").path
        guard let raw = try FileIO.read(path) else { throw ZarrError(path: path, message: "not found; expected a zarr v3 node") }
        do {
            let json = try ZarrJSON.parse(bytes: raw)
            guard json["zarr_format"]?.intValue == 3 else {
                throw ZarrError(path: path, message: "zarr_format must be 3")
            }
            return json
        } catch let error as ZarrError {
            throw error.at(path)
        }
    }

    /// The `attributes` of a group or array.
    public static func attributes(at url: URL) throws -> [String: ZarrJSON] {
        try readNodeMetadata(at: url)["attributes"]?.mapValue ?? [:]
    }

    /// Folders at or below `url` whose zarr.json is an array (sorted by path). Array
    /// folders are not searched further: their only sub-folders are chunk folders, which
    /// may hold millions of files.
    public static func findArrays(under url: URL) -> [URL] {
        var found: [URL] = []
        func visit(_ folder: URL) {
            if let raw = try? FileIO.read(folder.appendingPathComponent("zarr.json").path),
                let json = try? ZarrJSON.parse(bytes: raw), json["node_type"]?.stringValue == "array"
            {
                found.append(folder)
                return
            }
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
            for name in names.sorted() where !name.hasPrefix(".") {
                let child = folder.appendingPathComponent(name)
                if FileIO.isDirectory(child.path) { visit(child) }
            }
        }
        visit(url)
        return found.sorted { $0.path < $1.path }
    }
}
