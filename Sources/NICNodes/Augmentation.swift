import Flow
import Foundation
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
    public static func parse(_ value: ParamValue, file: String) throws -> AugmentationRecipe {
        guard let map = value.mapValue else { throw NodeError("\(file): an augmentation recipe is a mapping with 'name' and 'ops'") }
        for key in map.keys where !["name", "ops", "description"].contains(key) {
            throw NodeError("\(file): unknown key '\(key)' (a recipe has name, description, ops)")
        }
        guard let ops = map["ops"]?.listValue else { throw NodeError("\(file): 'ops' must be a list of operations") }
        var parsed: [AugmentationOp] = []
        for (i, item) in ops.enumerated() {
            let at = "\(file): ops item \(i + 1)"
            guard let op = item.mapValue else { throw NodeError("\(at): expected a mapping like {op: hed, p: 1, range: [0, 0.1]}") }
            for key in op.keys where !["op", "p", "range", "sigma"].contains(key) {
                throw NodeError("\(at): unknown key '\(key)' (an op has op, p, range, sigma)")
            }
            guard let name = op["op"]?.stringValue else { throw NodeError("\(at): missing 'op'") }
            guard let kind = AugmentationOp.Kind(rawValue: name) else {
                throw NodeError("\(at): unknown op '\(name)'; known: \(AugmentationOp.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let p = op["p"].map { $0.doubleValue } ?? 1
            guard let probability = p else { throw NodeError("\(at): 'p' must be a number") }
            var range: ClosedRange<Double> = 0...0
            switch op["range"] {
            case nil:
                if kind != .dihedral { throw NodeError("\(at): op '\(name)' needs a range [low, high]") }
            case .some(let r):
                if let v = r.doubleValue {
                    range = v...v
                } else if let l = r.listValue, l.count == 2, let lo = l[0].doubleValue, let hi = l[1].doubleValue {
                    guard lo <= hi else { throw NodeError("\(at): range low \(lo) is above high \(hi)") }
                    range = lo...hi
                } else {
                    throw NodeError("\(at): 'range' must be a number or [low, high]")
                }
            }
            let sigma = op["sigma"]?.doubleValue ?? 8
            let result = AugmentationOp(kind, probability: probability, range: range, sigma: sigma)
            if let problem = result.problems.first { throw NodeError("\(at) (\(name)): \(problem)") }
            parsed.append(result)
        }
        return AugmentationRecipe(name: map["name"]?.stringValue ?? (file as NSString).lastPathComponent, ops: parsed)
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
        @Param(doc: "augmentation recipe, e.g. nodes/augment/heavy.yaml") var recipe: Reference
        @Param(doc: "seed: the draw for (epoch, patch) is fixed by it") var seed = 1
        @Param(doc: "patches in preview.png, each with 6 epochs' augmentations (0: none)", .within(0, 256)) var preview = 4
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let recipeValue = params.recipe.content
        let recipe = try AugmentationRecipes.parse(recipeValue, file: params.recipe.path)
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
