import Flow
import Foundation

/// One self-contained HTML file per run: the DAG with per-node status and time, training curves,
/// metrics with CIs, scatter/ROC/Kaplan–Meier plots, and image previews. It follows conventions, not
/// node types, so the engine stays generic: any output port folder holding `metrics.json` (and
/// `scatter.csv`, `roc.csv`, `km.csv`), `curves.csv` (an `epoch` column plus metric columns), or
/// `preview/*.png` (captions in `preview/captions.json`) is shown. Progress events with metrics
/// (`events.jsonl`) give curves for nodes that write no `curves.csv`.
struct HTMLReport {
    let folder: URL
    let record: RunRecord

    init(runFolder: URL) throws {
        folder = runFolder
        do { record = try RunRecord.load(runFolder) }
        catch { throw FlowError("\(runFolder.path): not a run record (no readable run.json): \(error)") }
    }

    /// Output port folders of a node's cache entry, if it is still in the cache.
    func ports(of node: String) -> [(port: String, url: URL)] {
        guard let entry = record.nodes[node]?.entry else { return [] }
        let url = URL(fileURLWithPath: entry)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.sorted().compactMap { name in
            var isDir: ObjCBool = false
            let port = url.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: port.path, isDirectory: &isDir) && isDir.boolValue ? (name, port) : nil
        }
    }

    static let css = """
    body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}
    header{background:#1b2a3a;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
    header .meta{opacity:.85}main{padding:12px 28px 40px}section{background:#fff;border:1px solid #dde1e6;border-radius:8px;margin:16px 0;padding:14px 18px}
    h2{font-size:17px;margin:0 0 10px}table{border-collapse:collapse;margin:6px 0}td,th{border-bottom:1px solid #e6e8eb;padding:4px 10px;text-align:left;vertical-align:top}
    th{background:#f0f2f5}td.num{text-align:right;font-variant-numeric:tabular-nums}.empty{color:#777;font-style:italic}
    .status-done{color:#1a7f37}.status-cached{color:#0969da}.status-failed{color:#cf222e}.status-skipped,.status-pending{color:#8c959f}
    .charts{display:flex;flex-wrap:wrap;gap:14px}svg .title{font-weight:600;font-size:13px}svg .tick{font-size:10px;fill:#555}svg .axis,svg .legend{font-size:11px;fill:#333}
    figure{margin:0;display:inline-block;text-align:center}figure img{image-rendering:pixelated;border:1px solid #ccc;max-width:320px}figcaption{font-size:12px;color:#555}
    .previews{display:flex;flex-wrap:wrap;gap:12px}code{font-size:12px}summary{cursor:pointer;color:#0969da;margin:4px 0}
    table.results td,table.results th{white-space:nowrap}figure img{max-width:192px;min-width:96px}
    """

    func render() throws -> String {
        let c = record.counts
        var html = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nic report – \(esc(record.pipeline))</title><style>\(Self.css)</style></head><body>"
        let started = ISO8601DateFormatter().string(from: record.started)
        html += "<header id=\"summary\"><h1>\(esc(record.pipeline))</h1><div class=\"meta\">run \(esc(folder.lastPathComponent)) · started \(started) · status <b>\(esc(record.shownStatus))</b> · \(c.executed) executed, \(c.cached) cached, \(c.failed) failed, \(c.skipped) skipped\(record.seconds.map { " · " + String(format: "%.1f s", $0) } ?? "")</div></header><main>"
        let documents = metricsDocuments()  // read once, used by the results, metrics and plots
        html += section("results", "Results", resultTables(documents))
        // A matrix's instances are one box; the graph of every node is one click away.
        let full = dagSVG().map { "<div style=\"overflow-x:auto\">\($0)</div>" }
        if let grouped = groupedDAG() {
            html += section("dag", "Pipeline", grouped + (full.map { "<details id=\"dag-all\"><summary>every node (\(record.order.count))</summary>\($0)</details>" } ?? ""))
        } else {
            html += section("dag", "Pipeline", full)
        }
        html += section("nodes", "Nodes", nodesTable().map { "<details id=\"nodes-table\"\(record.order.count <= 20 ? " open" : "")><summary>\(record.order.count) nodes: \(c.executed) executed, \(c.cached) cached, \(c.failed) failed, \(c.skipped) skipped</summary>\($0)</details>" })
        html += section("curves", "Training curves", curves())
        html += section("metrics", "Metrics", metricsTables(documents).map { "<details id=\"metrics-all\"\(documents.count <= 12 ? " open" : "")><summary>every metric of every node (\(documents.count))</summary>\($0)</details>" })
        html += section("plots", "Plots", plots(documents))
        html += section("previews", "Previews", previews())
        return html + "<p class=\"empty\">Written by nic from \(esc(folder.path)).</p></main></body></html>"
    }

    func write() throws -> URL {
        let url = folder.appendingPathComponent("report.html")
        try Data(try render().utf8).write(to: url, options: .atomic)
        return url
    }

    func esc(_ s: String) -> String { SVGChart.escape(s) }

    func section(_ id: String, _ title: String, _ body: String?) -> String {
        let content = body ?? "<p class=\"empty\">Nothing of this kind in this run.</p>"
        return "<section id=\"section-\(id)\" data-empty=\"\(body == nil)\"><h2>\(title)</h2>\(content)</section>"
    }

    // MARK: DAG

    static let statusColor = ["done": "#d8f3dc", "cached": "#dbeafe", "failed": "#ffd7d5", "skipped": "#eceff1", "pending": "#eceff1", "running": "#fff3bf"]

    func dagSVG() -> String? {
        guard !record.order.isEmpty else { return nil }
        var depth: [String: Int] = [:]
        for name in record.order {
            let upstream = record.nodes[name]?.inputs.values.map { String($0.split(separator: ".")[0]) } ?? []
            depth[name] = (upstream.compactMap { depth[$0] }.max() ?? -1) + 1
        }
        var columns: [[String]] = []
        for name in record.order {
            let d = depth[name]!  // invariant: depth is set for every node of the order
            while columns.count <= d { columns.append([]) }
            columns[d].append(name)
        }
        let boxW = 170.0, boxH = 50.0, gapX = 60.0, gapY = 18.0
        var position: [String: (Double, Double)] = [:]
        for (d, column) in columns.enumerated() {
            for (i, name) in column.enumerated() {
                position[name] = (20 + Double(d) * (boxW + gapX), 20 + Double(i) * (boxH + gapY))
            }
        }
        let width = 40 + Double(columns.count) * (boxW + gapX) - gapX
        let height = 40 + Double(columns.map(\.count).max() ?? 1) * (boxH + gapY) - gapY
        var s = "<svg id=\"dag\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        for name in record.order {
            guard let node = record.nodes[name], let (x2, y2) = position[name] else { continue }
            for (port, source) in node.inputs.sorted(by: { $0.key < $1.key }) {
                let upstream = String(source.split(separator: ".")[0])
                guard let (x1, y1) = position[upstream] else { continue }
                let ax = x1 + boxW, ay = y1 + boxH / 2, bx = x2, by = y2 + boxH / 2
                s += "<path d=\"M\(ax),\(ay) C\(ax + gapX / 2),\(ay) \(bx - gapX / 2),\(by) \(bx),\(by)\" fill=\"none\" stroke=\"#7a8794\" stroke-width=\"1.5\"><title>\(esc(source)) → \(esc(name)).\(esc(port))</title></path>"
            }
        }
        for name in record.order {
            guard let node = record.nodes[name], let (x, y) = position[name] else { continue }
            let fill = Self.statusColor[node.status] ?? "#eceff1"
            let time = node.seconds.map { String(format: "%.2fs", $0) } ?? ""
            s += "<g class=\"dag-node\" data-node=\"\(esc(name))\" data-status=\"\(esc(node.status))\"><rect x=\"\(x)\" y=\"\(y)\" width=\"\(boxW)\" height=\"\(boxH)\" rx=\"8\" fill=\"\(fill)\" stroke=\"#56616d\"/>"
            s += "<text x=\"\(x + 10)\" y=\"\(y + 20)\" font-size=\"13\" font-weight=\"600\">\(esc(String(name.prefix(20))))</text>"
            s += "<text x=\"\(x + 10)\" y=\"\(y + 38)\" font-size=\"11\" fill=\"#444\">\(esc(String(node.type.prefix(14)))) · \(esc(node.status)) \(time)</text>"
            s += "<title>\(esc(name)) (\(esc(node.type))): \(esc(node.status))\(node.error.map { " – " + esc($0) } ?? "")</title></g>"
        }
        return s + "</svg>"
    }

    func nodesTable() -> String? {
        guard !record.order.isEmpty else { return nil }
        var s = "<table><tr><th>node</th><th>type</th><th>status</th><th>time</th><th>plan</th><th>key</th><th>detail</th></tr>"
        for name in record.order {
            guard let n = record.nodes[name] else { continue }
            let detail = [Self.jobSummary(n), n.error ?? n.progress].compactMap { $0 }.joined(separator: "; ")
            s += "<tr><td>\(esc(name))</td><td>\(esc(n.type))</td><td class=\"status-\(esc(n.status))\">\(esc(n.status))</td><td class=\"num\">\(n.seconds.map { String(format: "%.2f s", $0) } ?? "")</td><td>\(esc(n.plan == "cached" ? "cached" : n.reasons.joined(separator: "; ")))</td><td><code>\(esc(String(n.key.prefix(12))))</code></td><td>\(esc(detail))</td></tr>"
        }
        return s + "</table>"
    }

    /// Under the Slurm executor: "Slurm job 65 COMPLETED (queued 2 s, ran 1 s); items: arrays 59_[0-3] COMPLETED, ...".
    static func jobSummary(_ node: RunRecord.Node) -> String? {
        var parts: [String] = []
        if let arrays = node.itemArrays, !arrays.isEmpty {
            parts.append("items: arrays " + arrays.map { "\($0.id)\($0.adopted == true ? " (adopted from an earlier run)" : "") \($0.state)" }.joined(separator: ", "))
        }
        if let job = node.job {
            let times = [job.queueSeconds.map { String(format: "queued %.0f s", $0) }, job.runSeconds.map { String(format: "ran %.0f s", $0) }].compactMap { $0 }
            parts.append("Slurm job \(job.id)\(job.adopted == true ? " (adopted from an earlier run)" : "") \(job.state)\(times.isEmpty ? "" : " (\(times.joined(separator: ", ")))"), log \(job.log)")
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    // MARK: Curves

    func curves() -> String? {
        var charts: [String] = []
        var withFiles = Set<String>()
        for name in record.order {
            for (port, url) in ports(of: name) {
                let file = url.appendingPathComponent("curves.csv")
                guard let table = try? CSVTable.read(file), let xIndex = table.columnIndex("epoch") else { continue }
                withFiles.insert(name)
                // One panel per quantity: the loss (training beside validation), then each task's
                // metrics (`tissue_loss` beside `val_tissue_loss`), rather than a dozen series in one.
                var panels: [(title: String, columns: [Int])] = []
                for (k, column) in table.columns.enumerated() where k != xIndex && column != "learning_rate" {
                    let bare = column.hasPrefix("val_") ? String(column.dropFirst(4)) : column
                    let panel: String
                    if column.hasPrefix("fold") {
                        // A patient model: each fold's training loss (solid) beside its held-out fold's loss (dashed).
                        panel = table.columns.contains { $0.hasPrefix("fold") && $0.hasSuffix("_val_loss") }
                            ? "loss per fold: training (solid), held-out fold (dashed)" : "training loss per fold"
                    }
                    else if bare == "train_loss" || bare == "loss" { panel = "loss: training and validation" }
                    else { panel = "task " + String(bare.split(separator: "_").first ?? Substring(bare)) }
                    if let i = panels.firstIndex(where: { $0.title == panel }) { panels[i].columns.append(k) } else { panels.append((panel, [k])) }
                }
                for panel in panels {
                    var series: [SVGChart.Series] = []
                    for k in panel.columns {
                        let points = table.rows.compactMap { row in Double(row[xIndex]).flatMap { x in Double(row[k]).map { (x, $0) } } }
                        let column = table.columns[k]
                        let fold = column.hasPrefix("fold") ? Int(column.dropFirst(4).prefix { $0.isNumber }) : nil
                        let dashed = column.hasPrefix("val_") || column.hasSuffix("_val_loss")
                        // A fold's two curves share its colour; other panels colour series in turn.
                        let color = SVGChart.palette[((fold.map { $0 - 1 }) ?? series.count) % 8]
                        if !points.isEmpty {
                            series.append(.init(name: column + (dashed ? (fold == nil ? " (validation)" : " (held-out)") : ""), points: points, style: .line,
                                                color: color, dashed: dashed))
                        }
                    }
                    if !series.isEmpty {
                        charts.append(SVGChart(title: "\(name): \(panel.title)", xLabel: "epoch", yLabel: panel.title.hasPrefix("task") ? "value" : "loss",
                                               width: 420, height: 280, series: series).render())
                    }
                }
            }
        }
        // Progress events carrying metrics, for nodes without a curves file.
        let eventsURL = folder.appendingPathComponent("events.jsonl")
        if let text = try? String(contentsOf: eventsURL, encoding: .utf8) {
            var perNode: [String: [String: [(Double, Double)]]] = [:]
            var counter: [String: Double] = [:]
            for line in text.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let node = object["node"] as? String, !withFiles.contains(node),
                      let metrics = object["metrics"] as? [String: Any], !metrics.isEmpty else { continue }
                counter[node, default: 0] += 1
                for (key, value) in metrics {
                    if let v = (value as? NSNumber)?.doubleValue { perNode[node, default: [:]][key, default: []].append((counter[node]!, v)) }  // invariant: counted just above
                }
            }
            for node in perNode.keys.sorted() {
                let metrics = perNode[node]!  // invariant: node taken from perNode.keys
                // A node that reported a few times (a compressor's rates) reads better as bars of the last values.
                if metrics.values.allSatisfy({ $0.count < 3 }) {
                    let bars = metrics.keys.sorted().compactMap { key in metrics[key]?.last.map { (key, $0.1) } }
                    charts.append(Self.barChart(title: "\(node): last reported", bars: bars))
                    continue
                }
                let series = metrics.keys.sorted().enumerated().map { i, key in
                    SVGChart.Series(name: key, points: metrics[key]!, style: .line, color: SVGChart.palette[i % 8])  // invariant: key taken from metrics.keys
                }
                charts.append(SVGChart(title: node, xLabel: "update", yLabel: "value", series: series).render())
            }
        }
        return charts.isEmpty ? nil : "<div class=\"charts\">" + charts.joined() + "</div>"
    }

    // MARK: Metrics and plots

    struct MetricsDocument {
        var node: String
        var port: URL
        var task: String
        var n: Int
        var confidence: Double
        var metrics: [(String, [String: Double])]
    }

    func metricsDocuments() -> [MetricsDocument] {
        var docs: [MetricsDocument] = []
        for name in record.order {
            for (_, url) in ports(of: name) {
                guard let data = try? Data(contentsOf: url.appendingPathComponent("metrics.json")),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
                var metrics: [(String, [String: Double])] = []
                if let m = object["metrics"] as? [String: [String: Any]] {
                    for key in m.keys.sorted() {
                        metrics.append((key, m[key]!.compactMapValues { ($0 as? NSNumber)?.doubleValue }))  // invariant: key taken from m.keys
                    }
                } else {
                    // Any flat JSON of numbers also counts (e.g. the generic `describe` node's output).
                    for key in object.keys.sorted() {
                        if let v = (object[key] as? NSNumber)?.doubleValue { metrics.append((key, ["value": v])) }
                    }
                }
                if !metrics.isEmpty {
                    docs.append(MetricsDocument(node: name, port: url, task: object["task"] as? String ?? "",
                                                n: (object["n"] as? NSNumber)?.intValue ?? 0,
                                                confidence: (object["confidence"] as? NSNumber)?.doubleValue ?? 0.95, metrics: metrics))
                }
            }
        }
        return docs
    }

    func metricsTables(_ docs: [MetricsDocument]) -> String? {
        guard !docs.isEmpty else { return nil }
        var s = ""
        for doc in docs {
            s += "<h3>\(esc(doc.node))\(doc.task.isEmpty ? "" : " – \(esc(doc.task))")\(doc.n > 0 ? " (n = \(doc.n))" : "")</h3>"
            s += "<table class=\"metrics\"><tr><th>metric</th><th>value</th><th>\(Int((doc.confidence * 100).rounded()))% CI</th></tr>"
            for (name, values) in doc.metrics {
                let value = values["value"].map { String(format: name.hasSuffix("_p") ? "%.3g" : "%.3f", $0) } ?? ""
                let ci = values["ci_low"].flatMap { low in values["ci_high"].map { String(format: "[%.3f, %.3f]", low, $0) } } ?? "–"
                s += "<tr><td>\(esc(name))</td><td class=\"num\">\(value)</td><td class=\"num\">\(ci)</td></tr>"
            }
            s += "</table>"
        }
        return s
    }

    func plots(_ docs: [MetricsDocument]) -> String? {
        var charts: [String] = []
        for doc in docs {
            let metric = Dictionary(doc.metrics, uniquingKeysWith: { a, _ in a })
            if let table = try? CSVTable.read(doc.port.appendingPathComponent("scatter.csv")),
               let t = table.columnIndex("truth"), let p = table.columnIndex("prediction") {
                let points = table.rows.compactMap { row in Double(row[t]).flatMap { x in Double(row[p]).map { (x, $0) } } }
                let note = metric["spearman"]?["value"].map { String(format: "Spearman %.3f", $0) }
                charts.append(SVGChart(title: "\(doc.node): prediction vs truth", xLabel: "truth", yLabel: "prediction",
                                       series: [.init(name: "", points: points, style: .points, color: SVGChart.palette[0])], note: note).render())
            }
            if let table = try? CSVTable.read(doc.port.appendingPathComponent("roc.csv")),
               let f = table.columnIndex("fpr"), let t = table.columnIndex("tpr") {
                let points = table.rows.compactMap { row in Double(row[f]).flatMap { x in Double(row[t]).map { (x, $0) } } }
                let note = metric["auc"]?["value"].map { String(format: "AUC %.3f", $0) }
                charts.append(SVGChart(title: "\(doc.node): ROC", xLabel: "false positive rate", yLabel: "true positive rate",
                                       xRange: 0...1, yRange: 0...1, series: [.init(name: "", points: points, style: .line, color: SVGChart.palette[0])],
                                       diagonal: true, note: note).render())
            }
            if let table = try? CSVTable.read(doc.port.appendingPathComponent("km.csv")),
               let g = table.columnIndex("group"), let t = table.columnIndex("time"), let sv = table.columnIndex("survival") {
                var groups: [String] = []
                for row in table.rows where !groups.contains(row[g]) { groups.append(row[g]) }
                let series = groups.enumerated().map { i, group in
                    SVGChart.Series(name: group, points: table.rows.filter { $0[g] == group }.compactMap { row in
                        Double(row[t]).flatMap { x in Double(row[sv]).map { (x, $0) } } }, style: .step, color: SVGChart.palette[i % 8])
                }
                let note = metric["logrank_p"]?["value"].map { String(format: "log-rank p = %.3g", $0) }
                charts.append(SVGChart(title: "\(doc.node): Kaplan–Meier by predicted risk", xLabel: "time", yLabel: "survival",
                                       yRange: 0...1, series: series, note: note).render())
            }
        }
        return charts.isEmpty ? nil : "<div class=\"charts\">" + charts.joined() + "</div>"
    }

    // MARK: Previews

    func previews() -> String? {
        var figures: [String] = []
        for name in record.order {
            for (port, url) in ports(of: name) {
                let dir = url.appendingPathComponent("preview")
                // A slide's thumbnail before its false-colour grid: sort on the name without the suffix.
                let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".png") }
                    .sorted { ($0.replacingOccurrences(of: "-pca.png", with: ".png~"), $0) < ($1.replacingOccurrences(of: "-pca.png", with: ".png~"), $1) }
                guard !files.isEmpty else { continue }
                var captions: [String: String] = [:]
                if let data = try? Data(contentsOf: dir.appendingPathComponent("captions.json")),
                   let object = try? JSONSerialization.jsonObject(with: data) as? [String: String] { captions = object }
                for file in files.prefix(24) {
                    guard let data = try? Data(contentsOf: dir.appendingPathComponent(file)), !data.isEmpty else { continue }
                    figures.append(thumbnail(data, file: file, node: name, port: port, caption: captions[file] ?? "\(name).\(port): \(file)"))
                }
            }
        }
        return figures.isEmpty ? nil : "<div class=\"previews\">" + figures.joined() + "</div>"
    }
}
