import Flow
import Foundation
import Neural

/// `head_maps`: what an encoder's own task heads say of every grid cell — P(class) for each class of
/// a classification task, P(positive) for a binary task, the value (in the label's units) for a
/// regression task — as a GridSet with one named channel per output (`tissue:tumour`, `mitosis`,
/// `nuclei`). The heads are trained on patches with patch-level truth, so their read-out needs no
/// patient-level learning: a rate of one task over the cells another task picks (`grid_readout`) is a
/// patient score made from the patch tasks alone, which helps most where patients are few.
///
/// The heads read the grid's codes: with `shifts` they read the mean code of a cell's windows, which
/// for the linear heads nic ships is the mean of the windows' logits (with `shift_pool: max`, each
/// channel's largest value over the windows, which is no window's code).
public struct HeadMaps: NodeType {
    public static let name = "head_maps"
    public static let version = 1
    public static let summary = "Applies an encoder's task heads to every cell of its grids: a GridSet of per-cell class probabilities and values, one named channel each."
    public static let inputs = [PortSpec("encoder", .model, doc: "the supervised encoder whose heads are read"),
                                PortSpec("grids", .gridSet, doc: "grids compressed with that encoder")]
    public static let outputs = [PortSpec("maps", .gridSet, doc: "gridset.json (channels: one name per head output), grids/<slide>/o0 and mask")]

    public struct Params: NodeParams {
        @Param(doc: "tasks whose heads are read; empty: every task of the encoder") var tasks: [String] = []
        @Param(doc: "read grids compressed with another encoder (another cache key) instead of refusing them") var allowOtherEncoder = false
        public init() {}
    }

    public init() {}

    /// One task head, ready to read codes.
    struct Head {
        let task: EncoderModel.TaskInfo
        let network: Network
        /// Channel names, one per output of `outputs(_:)`.
        let channels: [String]

        /// Head outputs for codes [n, codeSize] as rows of `channels.count` values.
        func outputs(_ codes: Tensor) throws -> [Float] {
            let logits = try network.forward(codes, training: false)
            let n = codes.shape[0], width = logits.count / max(1, n)
            var out = [Float](repeating: 0, count: n * channels.count)
            for i in 0..<n {
                let row = Array(logits.data[(i * width)..<((i + 1) * width)])
                switch task.kind {
                case "classification":
                    let top = row.max() ?? 0
                    let exps = row.map { Foundation.exp(Double($0 - top)) }
                    let total = exps.reduce(0, +)
                    for k in 0..<width { out[i * width + k] = Float(exps[k] / total) }
                case "binary":
                    out[i] = Float(1 / (1 + Foundation.exp(-Double(row[0]))))
                default:
                    out[i] = Float(Double(row[0]) * (task.std ?? 1) + (task.mean ?? 0))
                }
            }
            return out
        }
    }

    /// The heads of a model folder (`heads/<task>.yaml`, `heads.safetensors`), in the model's task order.
    static func heads(of folder: URL, info: EncoderModel.Info, tasks wanted: [String]) throws -> [Head] {
        guard !info.tasks.isEmpty else {
            throw NodeError("input 'encoder': the model was trained with '\(info.training)' and has no task heads; head_maps reads a supervised encoder's heads")
        }
        for name in wanted where !info.tasks.contains(where: { $0.name == name }) {
            throw NodeError("param 'tasks': the encoder has no task '\(name)'; it has \(info.tasks.map(\.name).joined(separator: ", "))")
        }
        let weightsURL = folder.appendingPathComponent("heads.safetensors")
        let tensors = try Safetensors.read(weightsURL)
        var heads: [Head] = []
        for task in info.tasks where wanted.isEmpty || wanted.contains(task.name) {
            let classes = task.classes ?? []
            let channels: [String]
            switch task.kind {
            case "classification": channels = classes.map { "\(task.name):\($0)" }
            case "binary", "regression": channels = [task.name]
            default: throw NodeError("\(folder.appendingPathComponent("model.json").path): task '\(task.name)' has kind '\(task.kind)'; expected classification, binary or regression")
            }
            let architecture = try Heads.architecture(file: folder.appendingPathComponent("heads/\(task.name).yaml"), outputs: channels.count)
            let network = try architecture.build(seed: 0, inputShapes: [[info.codeSize]], prefix: "heads.\(task.name)")
            _ = try network.load(tensors, file: weightsURL.path)
            heads.append(Head(task: task, network: network, channels: channels))
        }
        return heads
    }

    public func run(_ context: NodeContext, _ params: Params) throws {
        let modelFolder = try context.input("encoder")
        let model = try EncoderModel(folder: modelFolder)
        let gridSet = try GridSet(folder: try context.input("grids"))
        guard gridSet.info.codeSize == model.info.codeSize, gridSet.info.channels == nil else {
            throw NodeError("input 'grids': \(gridSet.info.codeSize) channels\(gridSet.info.channels.map { " (" + $0.joined(separator: ", ") + ")" } ?? ""), but the encoder's heads read codes of width \(model.info.codeSize): give grids the compressor made with this encoder")
        }
        try checkSameEncoder(context, allow: params.allowOtherEncoder)
        let heads = try Self.heads(of: modelFolder, info: model.info, tasks: params.tasks)
        let channels = heads.flatMap(\.channels)
        let out = try context.output("maps")
        let c = gridSet.info.codeSize, k = channels.count
        for (index, slide) in gridSet.info.slides.enumerated() {
            try context.checkCancellation()
            let (codes, mask, rows, columns) = try gridSet.load(slide.stem)
            let cells = mask.indices.filter { mask[$0] }
            var values = [Float16](repeating: 0, count: rows * columns * k)
            // Cells in batches: a 10-gigapixel slide has ~600k cells, whose codes need not be copied at once.
            for start in stride(from: 0, to: cells.count, by: 4096) {
                let batch = Array(cells[start..<min(cells.count, start + 4096)])
                var input = [Float](repeating: 0, count: batch.count * c)
                for (i, cell) in batch.enumerated() { for ch in 0..<c { input[i * c + ch] = codes[cell * c + ch] } }
                let tensor = Tensor(shape: [batch.count, c], data: input)
                var offset = 0
                for head in heads {
                    let outputs = try head.outputs(tensor), width = head.channels.count
                    for (i, cell) in batch.enumerated() {
                        for j in 0..<width { values[cell * k + offset + j] = Float16(outputs[i * width + j]) }
                    }
                    offset += width
                }
            }
            try GridSet.writeSlide(values, channels: k, mask: mask.map { $0 ? 1 : 0 }, rows: rows, columns: columns,
                                   to: out.appendingPathComponent("grids").appendingPathComponent(slide.stem))
            context.progress(index + 1, of: gridSet.info.slides.count, unit: "slides")
        }
        try gridSet.slideSet.write(to: out)
        var info = gridSet.info
        info.codeSize = k
        info.orientations = 1
        info.channels = channels
        try info.write(to: out)
    }

    /// Codes mean something only to the encoder that wrote them: grids whose compressor read another
    /// encoder (another cache key) are refused unless allowed.
    private func checkSameEncoder(_ context: NodeContext, allow: Bool) throws {
        guard let origin = context.inputOrigin("grids"), let gridsEncoder = origin.inputs["encoder"],
              let encoderKey = context.inputOrigin("encoder")?.key else { return }
        let gridsKey = String(gridsEncoder.split(separator: "/").first ?? Substring(gridsEncoder))
        guard gridsKey != encoderKey else { return }
        let message = "input 'grids' was compressed with encoder \(gridsKey), input 'encoder' is \(encoderKey)"
        if allow { context.warn(message + "; read anyway (allow_other_encoder: true)"); return }
        throw NodeError(message + ": the heads of one encoder do not read another's codes. Connect the compressor's own encoder, or set allow_other_encoder: true")
    }
}
