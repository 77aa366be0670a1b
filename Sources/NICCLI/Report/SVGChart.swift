import Foundation

/// Small, dependency-free SVG charts for the report: axes with "nice" ticks, lines, step lines,
/// points, a diagonal, and a legend. Everything inline, so the HTML opens offline.
struct SVGChart {
    struct Series {
        var name: String
        var points: [(Double, Double)]
        var style: Style
        var color: String
        /// Drawn dashed (a validation or held-out curve beside its solid training curve of the same colour).
        var dashed = false
    }
    enum Style { case line, step, points }

    var title: String
    var xLabel: String
    var yLabel: String
    var width = 520.0
    var height = 340.0
    var xRange: ClosedRange<Double>?
    var yRange: ClosedRange<Double>?
    var series: [Series] = []
    var diagonal = false
    var note: String?

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    static func niceTicks(_ low: Double, _ high: Double, count: Int = 5) -> [Double] {
        guard high > low, low.isFinite, high.isFinite else { return [low] }
        let raw = (high - low) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var ticks: [Double] = []
        var t = (low / step).rounded(.up) * step
        while t <= high + step * 1e-9 { ticks.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return ticks
    }

    static func format(_ x: Double) -> String {
        if x == x.rounded() && abs(x) < 1e6 { return String(Int(x)) }
        return abs(x) >= 1e4 || abs(x) < 1e-3 ? String(format: "%.2g", x) : String(format: "%.3g", x)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    func render() -> String {
        let all = series.flatMap(\.points).filter { $0.0.isFinite && $0.1.isFinite }
        var xr = xRange ?? ((all.map(\.0).min() ?? 0)...(all.map(\.0).max() ?? 1))
        var yr = yRange ?? ((all.map(\.1).min() ?? 0)...(all.map(\.1).max() ?? 1))
        if xr.lowerBound == xr.upperBound { xr = (xr.lowerBound - 1)...(xr.upperBound + 1) }
        if yr.lowerBound == yr.upperBound { yr = (yr.lowerBound - 1)...(yr.upperBound + 1) }
        let left = 62.0, right = 16.0, top = 30.0, bottom = 46.0
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - xr.lowerBound) / (xr.upperBound - xr.lowerBound) * plotW }
        func py(_ y: Double) -> Double { top + plotH - (y - yr.lowerBound) / (yr.upperBound - yr.lowerBound) * plotH }
        var s = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(Self.escape(title))\">"
        s += "<text x=\"\(width / 2)\" y=\"18\" text-anchor=\"middle\" class=\"title\">\(Self.escape(title))</text>"
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"#fff\" stroke=\"#bbb\"/>"
        for t in Self.niceTicks(xr.lowerBound, xr.upperBound) {
            s += "<line x1=\"\(px(t))\" x2=\"\(px(t))\" y1=\"\(top)\" y2=\"\(top + plotH)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(px(t))\" y=\"\(top + plotH + 16)\" text-anchor=\"middle\" class=\"tick\">\(Self.format(t))</text>"
        }
        for t in Self.niceTicks(yr.lowerBound, yr.upperBound) {
            s += "<line x1=\"\(left)\" x2=\"\(left + plotW)\" y1=\"\(py(t))\" y2=\"\(py(t))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(py(t) + 4)\" text-anchor=\"end\" class=\"tick\">\(Self.format(t))</text>"
        }
        s += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 8)\" text-anchor=\"middle\" class=\"axis\">\(Self.escape(xLabel))</text>"
        s += "<text transform=\"translate(14,\(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\" class=\"axis\">\(Self.escape(yLabel))</text>"
        if diagonal {
            s += "<line x1=\"\(px(xr.lowerBound))\" y1=\"\(py(yr.lowerBound))\" x2=\"\(px(xr.upperBound))\" y2=\"\(py(yr.upperBound))\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>"
        }
        for item in series {
            let points = item.points.filter { $0.0.isFinite && $0.1.isFinite }
            guard !points.isEmpty else { continue }
            switch item.style {
            case .points:
                for (x, y) in points {
                    s += "<circle cx=\"\(px(x))\" cy=\"\(py(y))\" r=\"3\" fill=\"\(item.color)\" fill-opacity=\"0.7\"/>"
                }
            case .line, .step:
                var d = "M\(px(points[0].0)),\(py(points[0].1))"
                for (i, (x, y)) in points.enumerated().dropFirst() {
                    if item.style == .step { d += " L\(px(x)),\(py(points[i - 1].1))" }
                    d += " L\(px(x)),\(py(y))"
                }
                s += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(item.color)\" stroke-width=\"2\""
                    + (item.dashed ? " stroke-dasharray=\"6 4\" class=\"validation\"" : " class=\"training\"") + "/>"
            }
        }
        for (i, item) in series.enumerated() where series.count > 1 || !item.name.isEmpty {
            let y = top + 14 + Double(i) * 16
            if item.dashed {
                s += "<line x1=\"\(left + plotW - 152)\" x2=\"\(left + plotW - 138)\" y1=\"\(y - 4)\" y2=\"\(y - 4)\" stroke=\"\(item.color)\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/>"
            } else {
                s += "<rect x=\"\(left + plotW - 150)\" y=\"\(y - 9)\" width=\"10\" height=\"10\" fill=\"\(item.color)\"/>"
            }
            s += "<text x=\"\(left + plotW - 136)\" y=\"\(y)\" class=\"legend\">\(Self.escape(item.name))</text>"
        }
        if let note {
            s += "<text x=\"\(left + 8)\" y=\"\(top + plotH - 8)\" class=\"legend\">\(Self.escape(note))</text>"
        }
        return s + "</svg>"
    }
}
