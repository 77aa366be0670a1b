import ArgumentParser
import Flow
import Foundation
import NICNodes
import TensorStore

/// `nic export`: a pipeline's cached outputs in other tools' formats.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a pipeline's cached outputs in other tools' formats.",
        subcommands: [ExportGeoJSONCommand.self])
}

/// `nic export geojson PIPELINE NODE`: a GridSet (a compressor's or a features node's output) as
/// per-slide QuPath GeoJSON tiles.
struct ExportGeoJSONCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "geojson",
        abstract: "Write a node's GridSet as per-slide QuPath GeoJSON: one tile per encoded cell, classified by code cluster, with measurements.",
        discussion: """
        Each <slide>.geojson is a FeatureCollection of square polygons in level-0 pixels (objectType "tile"), \
        one per cell of the tissue mask, classified "cluster k" (k-means of the codes over all exported \
        slides, so colours agree between slides), with measurements: cluster, column, row, cluster distance, \
        code 0…, and with --attention the out-of-fold attention weight a bag patient model gave the cell. In QuPath: File › Import objects (or drag the file onto the open slide); Measure › Show \
        measurement maps colours the tiles by a measurement.
        """)

    @Argument(help: "The pipeline YAML file.") var file: String
    @Argument(help: "The node whose GridSet to export (compressor or features).") var node: String
    @Option(name: .shortAndLong, help: "Output folder (default: exports/<pipeline>-<node>).") var out: String?
    @Option(help: "Code clusters (k-means).") var clusters = 8
    @Option(help: "Seed of the clustering.") var seed: UInt64 = 1
    @Option(help: "Code channels written as measurements.") var channels = 8
    @Option(name: .customLong("slide"), help: "Export only this slide (repeatable).") var slides: [String] = []
    @Option(help: "A patient_model node with a bag architecture on this GridSet: its out-of-fold attention weights become the 'attention' measurement.")
    var attention: String?
    @OptionGroup var cacheOption: CacheOption

    func validate() throws {
        guard (1...64).contains(clusters) else { throw ValidationError("--clusters must be 1...64") }
        guard channels >= 0 else { throw ValidationError("--channels must not be negative") }
    }

    func run() throws {
        let graph = try loadGraph(file)
        guard let graphNode = graph.node(named: node) else {
            throw ValidationError("no node '\(node)' in pipeline '\(graph.spec.name)'; nodes: \(graph.nodes.map(\.name).joined(separator: ", "))")
        }
        guard let port = graphNode.type.outputs.first(where: { $0.type == .gridSet }) else {
            throw ValidationError("node '\(node)' (\(graphNode.type.name)) has no GridSet output; export a compressor or features node")
        }
        let plan = try Planner.plan(graph, cache: try cacheOption.open())
        guard let entry = plan.node(named: node)?.entry else {
            standardError("node '\(node)' has no cached output for the current spec; run `nic run \(file)` first")
            throw ExitCode(ExitStatus.failed)
        }
        let gridSet = try GridSet(folder: entry.appendingPathComponent(port.name))
        var cellValues: [String: [String: [Double]]] = [:]
        if let attention {
            guard graph.node(named: attention) != nil else { throw ValidationError("no node '\(attention)' in pipeline '\(graph.spec.name)'") }
            guard let modelEntry = plan.node(named: attention)?.entry else {
                standardError("node '\(attention)' has no cached output for the current spec; run `nic run \(file)` first")
                throw ExitCode(ExitStatus.failed)
            }
            let maps = modelEntry.appendingPathComponent("predictions/attention")
            for slide in gridSet.info.slides where FileManager.default.fileExists(atPath: maps.appendingPathComponent(slide.stem).path) {
                let values = try ZarrArrayReader(at: maps.appendingPathComponent(slide.stem)).read(as: Float.self)
                guard values.count == slide.rows * slide.columns else {
                    standardError("error: \(maps.path)/\(slide.stem): \(values.count) values for a \(slide.rows) × \(slide.columns) grid; is '\(attention)' a model of '\(node)'?")
                    throw ExitCode(ExitStatus.failed)
                }
                cellValues[slide.stem] = ["attention": values.map(Double.init)]
            }
            guard !cellValues.isEmpty else {
                standardError("error: node '\(attention)' wrote no attention maps (\(maps.path)); only bag architectures (nodes/patient/abmil-gated.yaml, mil-mean.yaml) do")
                throw ExitCode(ExitStatus.failed)
            }
        }
        var exporter = GridSetGeoJSON()
        exporter.clusters = clusters
        exporter.seed = seed
        exporter.channels = channels
        let folder = URL(fileURLWithPath: out ?? "exports/\(graph.spec.name)-\(node)")
        do {
            let files = try exporter.write(gridSet, to: folder, only: Set(slides), cellValues: cellValues)
            print("wrote \(files.count) GeoJSON file\(files.count == 1 ? "" : "s") to \(folder.path)")
        } catch let error as NodeError {
            standardError("error: \(error)")
            throw ExitCode(ExitStatus.failed)
        }
    }
}
