import CZlib
import Flow
import Foundation
import Slides

/// What the report opens with: the results of each matrix/foreach template as a table (as `nic
/// metrics` prints them), and a pipeline graph where a template's instances are one box.
extension HTMLReport {
    func resultTables(_ docs: [MetricsDocument]) -> String? {
        let byNode = Dictionary(grouping: docs, by: \.node)
        var templates: [String] = []
        var results: [MetricResults] = []
        for name in record.order {
            guard let node = record.nodes[name], let template = node.template, let docs = byNode[name] else { continue }
            if !templates.contains(template) { templates.append(template) }
            let instance = NodeInstance(template: template, axes: node.axes ?? [], labels: node.labels ?? [], source: node.source, from: node.from)
            let metrics = docs.flatMap { doc in
                doc.metrics.map { MetricResults.Metric(name: $0.0, value: $0.1["value"], low: $0.1["ci_low"], high: $0.1["ci_high"]) }
            }
            results.append(MetricResults(node: name, instance: instance, metrics: metrics, n: docs.first.map { "\($0.n)" } ?? ""))
        }
        let tables = ResultTable.group(results, templates: templates, typeOf: { record.nodes[$0]?.type }, columnAxis: nil)
        guard !tables.isEmpty else { return nil }
        var s = ""
        for table in tables {
            s += "<h3>\(esc(table.title))</h3><table class=\"results\" data-template=\"\(esc(table.title.split(separator: ":")[0].description))\">"
            for (i, row) in table.textRows.enumerated() {
                let cell = i == 0 ? "th" : "td"
                s += "<tr>" + row.enumerated().map { j, text in
                    let numeric = i > 0 && j > table.rowAxes.count
                    return "<\(cell)\(numeric ? " class=\"num\"" : "")>\(esc(text))</\(cell)>"
                }.joined() + "</tr>"
            }
            s += "</table>"
        }
        return s
    }

    /// The graph with each template's instances drawn as one box ("model ×27"), scaled to the page.
    func groupedDAG() -> String? {
        guard !record.order.isEmpty else { return nil }
        var groups: [String] = []
        var members: [String: [String]] = [:]
        func group(of name: String) -> String { record.nodes[name]?.template ?? name }
        for name in record.order {
            let g = group(of: name)
            if members[g] == nil { groups.append(g) }
            members[g, default: []].append(name)
        }
        guard groups.count < record.order.count else { return nil }
        var edges = Set<[String]>()
        var depth: [String: Int] = [:]
        for name in record.order {
            let g = group(of: name)
            for source in record.nodes[name]?.inputs.values ?? [:].values {
                let upstream = group(of: String(source.split(separator: ".")[0]))
                guard upstream != g else { continue }
                edges.insert([upstream, g])
                depth[g] = max(depth[g] ?? 0, (depth[upstream] ?? 0) + 1)
            }
            depth[g] = depth[g] ?? 0
        }
        var columns: [[String]] = []
        for g in groups {
            let d = depth[g] ?? 0
            while columns.count <= d { columns.append([]) }
            columns[d].append(g)
        }
        let boxW = 170.0, boxH = 54.0, gapX = 50.0, gapY = 16.0
        var position: [String: (Double, Double)] = [:]
        for (d, column) in columns.enumerated() {
            for (i, g) in column.enumerated() { position[g] = (20 + Double(d) * (boxW + gapX), 20 + Double(i) * (boxH + gapY)) }
        }
        let width = 40 + Double(columns.count) * (boxW + gapX) - gapX
        let height = 40 + Double(columns.map(\.count).max() ?? 1) * (boxH + gapY) - gapY
        var s = "<svg id=\"dag-groups\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" style=\"max-width:\(Int(width))px\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"pipeline graph\">"
        for edge in edges.sorted(by: { $0.joined() < $1.joined() }) {
            guard let (x1, y1) = position[edge[0]], let (x2, y2) = position[edge[1]] else { continue }
            let ax = x1 + boxW, ay = y1 + boxH / 2, bx = x2, by = y2 + boxH / 2
            s += "<path d=\"M\(ax),\(ay) C\(ax + gapX / 2),\(ay) \(bx - gapX / 2),\(by) \(bx),\(by)\" fill=\"none\" stroke=\"#7a8794\" stroke-width=\"1.5\"/>"
        }
        for g in groups {
            guard let (x, y) = position[g], let names = members[g] else { continue }
            let statuses = names.compactMap { record.nodes[$0]?.status }
            let shown = ["failed", "running", "pending", "skipped", "done", "cached"].first { statuses.contains($0) } ?? "pending"
            let counts = Dictionary(grouping: statuses, by: { $0 }).map { "\($0.value.count) \($0.key)" }.sorted().joined(separator: ", ")
            let type = Set(names.compactMap { record.nodes[$0]?.type }).sorted().joined(separator: "/")
            let isGroup = names.count > 1 || record.nodes[names[0]]?.template != nil
            let label = isGroup ? "\(g) ×\(names.count)" : g
            s += "<g class=\"dag-group\" data-group=\"\(esc(g))\" data-count=\"\(names.count)\" data-status=\"\(esc(shown))\">"
            s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(boxW)\" height=\"\(boxH)\" rx=\"8\" fill=\"\(Self.statusColor[shown] ?? "#eceff1")\" stroke=\"#56616d\"\(isGroup ? " stroke-dasharray=\"5 3\" stroke-width=\"1.6\"" : "")/>"
            s += "<text x=\"\(x + 10)\" y=\"\(y + 20)\" font-size=\"13\" font-weight=\"600\">\(esc(String(label.prefix(22))))</text>"
            s += "<text x=\"\(x + 10)\" y=\"\(y + 38)\" font-size=\"11\" fill=\"#444\">\(esc(String(type.prefix(16)))) · \(esc(String(counts.prefix(22))))</text>"
            s += "<title>\(esc(g)) (\(esc(type))): \(esc(counts))\n\(esc(names.prefix(40).joined(separator: ", ")))\(names.count > 40 ? " …" : "")</title></g>"
        }
        return s + "</svg>"
    }

    /// A preview as a small embedded thumbnail linking to the full image (through the run's
    /// `outputs/<node>` link), so that the report stays small however many previews there are.
    func thumbnail(_ data: Data, file: String, node: String, port: String, caption: String) -> String {
        let relative = ["outputs", node, port, "preview", file].map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? $0 }.joined(separator: "/")
        let small = Self.downscaledPNG(data, maxSide: 192) ?? (data.count <= 64 << 10 ? data : nil)
        let image = small.map { "<img alt=\"\(esc(file))\" src=\"data:image/png;base64,\($0.base64EncodedString())\">" }
            ?? "<span class=\"empty\">\(esc(file))</span>"
        return "<figure><a href=\"\(esc(relative))\" class=\"full-image\">\(image)</a><figcaption>\(esc(caption))</figcaption></figure>"
    }

    /// nic's own PNGs (8-bit RGB, stored deflate blocks, no filters) read back and box-averaged to
    /// at most `maxSide` pixels; nil for any other PNG.
    static func downscaledPNG(_ data: Data, maxSide: Int) -> Data? {
        let bytes = [UInt8](data)
        guard bytes.count > 33, bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { return nil }
        func be32(_ i: Int) -> Int { Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
        var offset = 8
        var width = 0, height = 0
        var zlib: [UInt8] = []
        while offset + 8 <= bytes.count {
            let length = be32(offset)
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            let start = offset + 8
            guard length >= 0, start + length <= bytes.count else { return nil }
            if type == "IHDR" {
                guard length >= 13 else { return nil }
                width = be32(start); height = be32(start + 4)
                guard bytes[start + 8] == 8, bytes[start + 9] == 2, bytes[start + 12] == 0 else { return nil }
            } else if type == "IDAT" {
                zlib.append(contentsOf: bytes[start..<(start + length)])
            } else if type == "IEND" { break }
            offset = start + length + 4
        }
        guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15, zlib.count > 2 else { return nil }
        let stride = width * 3 + 1
        var raw: [UInt8] = []
        raw.reserveCapacity(stride * height)
        var p = 2
        while p < zlib.count {
            let header = zlib[p]
            guard header & 0b110 == 0, p + 5 <= zlib.count else { return nil }  // stored blocks only
            let n = Int(zlib[p + 1]) | Int(zlib[p + 2]) << 8
            guard p + 5 + n <= zlib.count else { return nil }
            raw.append(contentsOf: zlib[(p + 5)..<(p + 5 + n)])
            p += 5 + n
            if header & 1 == 1 { break }
        }
        guard raw.count >= stride * height else { return nil }
        let scale = max(1, (max(width, height) + maxSide - 1) / maxSide)
        let w = max(1, width / scale), h = max(1, height / scale)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                var sum = [0, 0, 0], count = 0
                for dy in 0..<scale where y * scale + dy < height {
                    let row = (y * scale + dy) * stride
                    guard raw[row] == 0 else { return nil }  // filter: none
                    for dx in 0..<scale where x * scale + dx < width {
                        let i = row + 1 + (x * scale + dx) * 3
                        sum[0] += Int(raw[i]); sum[1] += Int(raw[i + 1]); sum[2] += Int(raw[i + 2])
                        count += 1
                    }
                }
                for c in 0..<3 { pixels[(y * w + x) * 3 + c] = UInt8(sum[c] / max(count, 1)) }
            }
        }
        return deflatedPNG(width: w, height: h, pixels: pixels) ?? Data(PNG.encode(RGBImage(width: w, height: h, pixels: pixels)))
    }

    /// An 8-bit RGB PNG with zlib-compressed scanlines (each with the "Sub" filter, which suits
    /// tissue and false-colour images): the report's thumbnails are a few times smaller than nic's
    /// stored-block PNGs. nil if zlib fails (the caller then stores the pixels uncompressed).
    static func deflatedPNG(width: Int, height: Int, pixels: [UInt8]) -> Data? {
        let stride = width * 3
        var raw = [UInt8](repeating: 0, count: (stride + 1) * height)
        for y in 0..<height {
            let out = y * (stride + 1), row = y * stride
            raw[out] = 1  // Sub: each byte minus the same channel of the pixel to its left
            for i in 0..<stride { raw[out + 1 + i] = pixels[row + i] &- (i >= 3 ? pixels[row + i - 3] : 0) }
        }
        var size = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(size))
        guard compress2(&compressed, &size, raw, uLong(raw.count), 9) == Z_OK else { return nil }
        func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ body: [UInt8]) {
            let typed = Array(type.utf8) + body
            png += be32(body.count) + typed
            png += be32(Int(crc32(0, typed, uInt(typed.count))))
        }
        chunk("IHDR", be32(width) + be32(height) + [8, 2, 0, 0, 0])
        chunk("IDAT", Array(compressed[0..<Int(size)]))
        chunk("IEND", [])
        return Data(png)
    }

    /// Horizontal bars, one per named value (each labelled with its value: the scales differ).
    static func barChart(title: String, bars: [(String, Double)]) -> String {
        let width = 420.0, rowH = 22.0, left = 150.0, top = 28.0
        let height = top + Double(max(bars.count, 1)) * rowH + 12
        let largest = bars.map { abs($0.1) }.filter(\.isFinite).max() ?? 1
        var s = "<svg class=\"chart bars\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(SVGChart.escape(title))\">"
        s += "<text x=\"\(width / 2)\" y=\"18\" text-anchor=\"middle\" class=\"title\">\(SVGChart.escape(title))</text>"
        s += "<rect x=\"\(left)\" y=\"\(top - 4)\" width=\"\(width - left - 70)\" height=\"\(height - top - 8)\" fill=\"#fff\" stroke=\"#ddd\"/>"
        for (i, bar) in bars.enumerated() {
            let y = top + Double(i) * rowH
            let w = largest > 0 && bar.1.isFinite ? abs(bar.1) / largest * (width - left - 70) : 0
            s += "<text x=\"\(left - 6)\" y=\"\(y + 14)\" text-anchor=\"end\" class=\"axis\">\(SVGChart.escape(bar.0))</text>"
            s += "<rect x=\"\(left)\" y=\"\(y + 3)\" width=\"\(w)\" height=\"\(rowH - 6)\" fill=\"\(SVGChart.palette[i % 8])\"/>"
            s += "<text x=\"\(left + w + 4)\" y=\"\(y + 14)\" class=\"tick\">\(SVGChart.format(bar.1))</text>"
        }
        return s + "</svg>"
    }
}
