import NICBasics
import ArgumentParser
import Flow
import Foundation
import NICNodes
import Slides

/// `nic augment preview`: see what a recipe does to real patches before training with it.
struct AugmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "augment",
        abstract: "Augmentation recipes (nodes/augment/*.yaml).",
        subcommands: [AugmentPreviewCommand.self])
}

struct AugmentPreviewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview",
        abstract: "Write a PNG grid of augmented patches: one row per tissue patch, the original first, then one column per epoch.")

    @Argument(help: "The recipe YAML file, e.g. nodes/augment/heavy.yaml.") var recipe: String
    @Option(help: "A slide to take tissue patches from (any OpenSlide format).") var slide: String
    @Option(name: .shortAndLong, help: "The PNG to write.") var out: String = "augment-preview.png"
    @Option(help: "Number of patches (rows).") var patches: Int = 6
    @Option(help: "Augmented versions per patch (columns after the original).") var epochs: Int = 6
    @Option(help: "Seed of the augmentation and of the patch choice.") var seed: Int = 1
    @Option(help: "µm/px of the patches.") var mpp: Double = 0.5
    @Option(help: "Patch size in pixels.") var size: Int = 128
    @Option(name: .customLong("slide-mpp"), help: "µm/px of the slide's level 0 when the file does not say.") var slideMPP: Double?

    func validate() throws {
        guard patches > 0, epochs > 0, size > 0, mpp > 0 else { throw ValidationError("--patches, --epochs, --size and --mpp must be positive") }
    }

    func run() throws {
        let recipeURL = URL(fileURLWithPath: recipe).standardizedFileURL
        let parsed: AugmentationRecipe
        do {
            parsed = try AugmentationRecipes.parse(try loadRecipe(recipeURL), file: recipe)
            let source = try Slide(url: URL(fileURLWithPath: slide), mpp: slideMPP)
            let mask = try TissueDetector().detect(source)
            let grid = TileGrid(slide: source, mpp: mpp, size: size, mask: mask)
            let cells = grid.tissueCells(minTissue: 0.6)
            guard !cells.isEmpty else { throw SlideError(.invalidArgument, path: slide, "no tissue cells of \(size) px at \(mpp) µm/px to preview") }
            var rng = SplitMix64(seed: UInt64(bitPattern: Int64(seed)), 0)
            let chosen = cells.indices.shuffled(using: &rng).prefix(patches).sorted()
            let images = try chosen.map { i -> RGBImage in
                let o = grid.origin(column: cells[i].column, row: cells[i].row)
                return try source.readRegion(x: o.x, y: o.y, width: size, height: size, mpp: mpp)
            }
            let augmenter = Augmenter(recipe: parsed, seed: UInt64(bitPattern: Int64(seed)))
            try PNG.write(AugmentationPreview.grid(patches: images, indices: Array(chosen), augmenter: augmenter, epochs: epochs), to: URL(fileURLWithPath: out))
        } catch let error as SlideError {
            standardError("error: \(error)")
            throw ExitCode(ExitStatus.failed)
        } catch let error as NodeError {
            standardError("error: \(error)")
            throw ExitCode(ExitStatus.failed)
        }
        print("wrote \(out): \(patches) patches × (original + \(epochs) augmentations) with recipe '\(parsed.name)' (\(parsed.ops.map(\.kind.rawValue).joined(separator: ", ")))")
    }

    /// The engine parses YAML references; a one-node pipeline that references the recipe gets it parsed
    /// (and any YAML error reported with file, line and column) exactly as `nic run` would.
    func loadRecipe(_ url: URL) throws -> ParamValue {
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        let slideURL = URL(fileURLWithPath: slide).standardizedFileURL
        let text = """
        pipeline: augment-preview
        inputs:
          cohort: {kind: slides, dir: \(quoted(slideURL.deletingLastPathComponent().path)), pattern: \(quoted(slideURL.lastPathComponent))}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}}
          preview: {type: augmenter, in: {patches: tiles}, params: {recipe: \(quoted(url.path))}}
        """
        do {
            let spec = try SpecParser.parse(text: text, file: "augment preview", directory: url.deletingLastPathComponent())
            let graph = try PipelineGraph.build(spec, registry: NICEnvironment.registry)
            guard let value = graph.node(named: "preview")?.params["recipe"] else { throw NodeError("\(recipe): could not be read") }
            return value
        } catch let errors as SpecErrors {
            standardError(errors.description)
            throw ExitCode(ExitStatus.badSpec)
        }
    }
}
