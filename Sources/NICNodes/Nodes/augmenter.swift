import Flow
import Foundation
import NICBasics
import Slides

/// Reading augmentation recipes (YAML under nodes/augment/, parsed by the engine into a ParamValue):
///
/// ```yaml
/// name: heavy
/// ops:
///   - {op: dihedral, p: 1.0}
///   - {op: hed, p: 1.0, range: [0.0, 0.2]}        # σ of the stain jitter
///   - {op: elastic, p: 0.3, range: [2, 6], sigma: 8}
/// ```
/// `op` is one of `AugmentationOp.Kind`; `p` its probability (default 1); `range` [low, high] (or one
/// number) the magnitude drawn uniformly per patch and epoch.
public enum AugmentationRecipes {
    /// A recipe already checked (a node's reference content, a PatchSet's augmentation.json).
    public static func parse(_ value: ParamValue, file: String) throws -> AugmentationRecipe {
        try RecipeFile.decode(value, file: file).recipe(file: file)
    }

    /// A referenced recipe, from the text the node was keyed on.
    static func parse(_ reference: Reference) throws -> AugmentationRecipe {
        try RecipeFile.decode(reference).recipe(file: reference.path)
    }

    /// A recipe file as written: decoded by the engine's YAML decoder, so `nic validate` reports a
    /// misspelt key or a bad value at its line.
    struct RecipeFile: YAMLDecodable {
        var name: String?
        var description: String?
        var ops: [Op]

        func recipe(file: String) -> AugmentationRecipe {
            AugmentationRecipe(name: name ?? (file as NSString).lastPathComponent, ops: ops.map(\.op))
        }
    }

    struct Op: Decodable, Sendable {
        var op: AugmentationOp
        enum CodingKeys: String, CodingKey { case op, p, range, sigma }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let name = try c.decode(String.self, forKey: .op)
            let kinds = AugmentationOp.Kind.allCases.map(\.rawValue)
            guard let kind = AugmentationOp.Kind(rawValue: name) else {
                let hint = Suggest.hint(for: name, among: kinds)
                throw DecodingError.dataCorruptedError(forKey: .op, in: c, debugDescription: "unknown op '\(name)'\(hint); known: \(kinds.joined(separator: ", "))")
            }
            let probability = try c.decodeIfPresent(Double.self, forKey: .p) ?? 1
            var range: ClosedRange<Double> = 0...0
            if c.contains(.range) {
                if let v = try? c.decode(Double.self, forKey: .range) {
                    range = v...v
                } else {
                    let bounds = try c.decode([Double].self, forKey: .range)
                    guard bounds.count == 2 else {
                        throw DecodingError.dataCorruptedError(forKey: .range, in: c, debugDescription: "'range' must be a number or [low, high]")
                    }
                    guard bounds[0] <= bounds[1] else {
                        throw DecodingError.dataCorruptedError(forKey: .range, in: c, debugDescription: "range low \(bounds[0]) is above high \(bounds[1])")
                    }
                    range = bounds[0]...bounds[1]
                }
            } else if kind != .dihedral {
                throw DecodingError.keyNotFound(CodingKeys.range, .init(codingPath: c.codingPath, debugDescription: "op '\(name)' needs a range [low, high]"))
            }
            let sigma = try c.decodeIfPresent(Double.self, forKey: .sigma) ?? 8
            op = AugmentationOp(kind, probability: probability, range: range, sigma: sigma)
            if let problem = op.problems.first {
                // At the value the problem is about: `problems` speaks of the probability, the
                // sigma, or else the range (its low end or its factors).
                let key: CodingKeys = problem.hasPrefix("probability") ? .p : problem.hasPrefix("sigma") ? .sigma : .range
                let path = c.codingPath + (c.contains(key) ? [key] : [])
                throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "op '\(name)': \(problem)"))
            }
        }
    }
}

/// `augmenter`: attaches a recipe and seed to a PatchSet. It does not write augmented copies — the
/// training node draws fresh augmentations each epoch with `PatchSet.augmenter()` — but it checks the
/// recipe up front and renders `preview.png` (patches × epochs) so the recipe can be judged by eye.
public struct AugmenterNode: NodeType {
    public static let name = "augmenter"
    public static let version = 1
    public static let summary = "Attaches an augmentation recipe (nodes/augment/*.yaml) and seed to a PatchSet; augmentation is drawn per epoch."
    public static let inputs = [PortSpec("patches", .patchSet, doc: "the patches to augment during training")]
    public static let outputs = [PortSpec("patches", .patchSet, doc: "the same PatchSet plus augmentation.json and preview.png")]
    public struct Params: NodeParams {
        @Param(doc: "augmentation recipe, e.g. nodes/augment/heavy.yaml", schema: AugmentationRecipes.RecipeFile.self) var recipe: Reference
        @Param(doc: "seed: the draw for (epoch, patch) is fixed by it") var seed = 1
        @Param(doc: "patches in preview.png, each with 6 epochs' augmentations (0: none)", .within(0, 256)) var preview = 4
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let recipeValue = params.recipe.content
        let recipe = try AugmentationRecipes.parse(params.recipe)
        let seed = params.seed
        let input = try context.input("patches")
        let output = try context.output("patches")
        try mirror(input, into: output)
        let json = ParamValue.map(["recipe": recipeValue, "seed": .int(seed)]).canonicalJSON
        try Data((json + "\n").utf8).write(to: output.appendingPathComponent("augmentation.json"))
        let set = try PatchSet(folder: output)
        let n = min(params.preview, set.count)
        if n > 0 {
            let augmenter = Augmenter(recipe: recipe, seed: UInt64(bitPattern: Int64(seed)))
            let indices = (0..<n).map { $0 * set.count / n }
            let patches = try set.images(at: indices)
            try PNG.write(AugmentationPreview.grid(patches: patches, indices: indices, augmenter: augmenter, epochs: 6),
                          to: output.appendingPathComponent("preview.png"))
        }
    }

    /// Hard links when possible (cache entries are immutable, so sharing inodes is safe and costs no
    /// space), copies otherwise (another file system).
    func mirror(_ source: URL, into destination: URL) throws {
        let fm = FileManager.default
        guard let walker = fm.enumerator(at: source, includingPropertiesForKeys: [.isDirectoryKey]) else {
            throw NodeError("\(source.path): cannot list the input PatchSet")
        }
        for case let url as URL in walker {
            let relative = String(url.path.dropFirst(source.path.count + 1))
            let target = destination.appendingPathComponent(relative)
            if (try url.resourceValues(forKeys: [.isDirectoryKey])).isDirectory == true {
                try fm.createDirectory(at: target, withIntermediateDirectories: true)
            } else if link(url.path, target.path) != 0 {
                try fm.copyItem(at: url, to: target)
            }
        }
    }
}

/// A grid image: one row per patch, the original first, then one augmented version per epoch.
public enum AugmentationPreview {
    public static func grid(patches: [RGBImage], indices: [Int], augmenter: Augmenter, epochs: Int, gap: Int = 4) -> RGBImage {
        guard let first = patches.first else { return RGBImage(width: 1, height: 1) }
        let s = first.width
        var canvas = RGBImage(width: (epochs + 1) * (s + gap) + gap, height: patches.count * (s + gap) + gap)
        for (r, patch) in patches.enumerated() {
            canvas.paste(patch, x: gap, y: gap + r * (s + gap))
            for e in 0..<epochs {
                canvas.paste(augmenter.apply(to: patch, epoch: e, index: indices[r]), x: gap + (e + 1) * (s + gap), y: gap + r * (s + gap))
            }
        }
        return canvas
    }
}
