@testable import Flow
import Foundation
import Logging
import NICBasics
import XCTest

/// A per-item cache key (one slide of the compressor) is a promise to existing caches like a node's
/// key: it must not move when the code that builds it does. Pinned from the code as it stood.
final class ItemKeyPinTests: XCTestCase {
    func testItemKeysArePinned() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-items-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let cache = try Cache(root: root.appendingPathComponent("cache"))
        let keyParams: [String: ParamValue] = [
            "mpp": .float(0.5), "orientations": .string("8"), "batch_size": .int(256),
            "recipe": .map(["name": .string("heavy"), "ops": .list([.map(["op": .string("hed"), "p": .float(1)])])]),
            "labels": .string("sha256:0123"), "nothing": .null, "flag": .bool(true),
        ]
        let inputKeys = ["slides": String(repeating: "a", count: 64) + "/slides", "encoder": String(repeating: "b", count: 64) + "/model"]
        let context = NodeContext(
            nodeName: "grids", params: keyParams, paths: [:], inputFolders: [:], outputRoot: root.appendingPathComponent("out"),
            threads: 1, logger: Logger(label: "test"), cancellation: Locked(false), fileHasher: cache.fileHasher,
            itemScope: ItemScope(cache: cache, pipeline: "demo", node: CacheKey(type: "compressor", version: 1, params: keyParams, inputs: inputKeys)),
            onProgress: { _ in })
        let slide = try context.cachedItem("sha256:feed", excludingInputs: ["slides"]) { folder in
            try Data("x".utf8).write(to: folder.appendingPathComponent("grid"))
        }
        let whole = try context.cachedItem("slide-2") { folder in
            try Data("y".utf8).write(to: folder.appendingPathComponent("grid"))
        }
        XCTAssertFalse(slide.reused || whole.reused)
        XCTAssertEqual(context.itemKeys.current, [
            "289a432657e9cd9bf1e2f60fb8ca44aa62e8daaf6b6a5bc51c53a9ebca0da8cd",
            "6284c1802bfb0b8450a744215d8c9c21c4c8c0cdb39e1766e0fa005134721c7c",
        ])
    }
}
