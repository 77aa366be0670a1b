import Foundation
import NICBasics

/// A nucleus of a synthetic slide (level-0 pixels).
public struct SyntheticNucleus: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Fibroblast of the stroma: sparse, elongated, moderately dark.
        case stroma
        /// Interphase tumour nucleus: large, round, pale open chromatin.
        case tumour
        /// Mitotic figure: condensed chromosomes, dark and ragged, about 1.5–2× a tumour nucleus's area, in a
        /// clear halo (the cell rounds up and pushes its neighbours aside).
        case mitosis
        /// Apoptotic body: a look-alike of mitoses — small, round, very dark, in shrunken pink cytoplasm.
        case apoptotic
        /// Lymphocyte: a look-alike too — small, round, dark, in stroma and infiltrating tumour.
        case lymphocyte
    }
    public let x: Double
    public let y: Double
    /// Semi-axes and orientation of the ellipse that holds the nucleus (for a mitosis: the whole figure).
    public let a: Double
    public let b: Double
    public let angle: Double
    public let kind: Kind
}

/// The cell model. Each lattice cell (i, j) draws everything about its cell from `hashUnit(seedCells, i, j, k)`
/// with its own k, so a cell is the same whichever region asks for it.
///
/// Sizes at 0.5 µm/px (radii in px): tumour nucleus 5–7.5 (area ≈ 110 px²), fibroblast 7–9 × 2.2,
/// lymphocyte 3.3–4.1, apoptotic body 2.6–3.4 (plus fragments and a 6–7 px eosinophilic rim); a mitotic
/// figure covers ≈ 185 px² of dark chromatin on average, 1.6× a tumour nucleus (measured in rendered pixels
/// by `SyntheticCellTests`), inside a clear halo of radius 14–18 px. Haematoxylin (optical density added): tumour 0.55, fibroblast 0.7, lymphocyte 1.05–1.15,
/// apoptotic 1.6, mitotic clumps 1.45–1.7 — mitoses, apoptotic bodies and lymphocytes are all far darker
/// than interphase tumour nuclei; shape, size and halo tell them apart.
extension SyntheticSlide {
    /// How far a cell's marks (its nucleus, figure or halo) reach from its nucleus centre, in px.
    static let cellReach = 20
    /// Neighbours whose nuclei lie closer than this to a mitosis are absent: the dividing cell has rounded up.
    /// Kept below 20.8 px, the least distance between nuclei two lattice cells apart, so only the 8
    /// neighbours of a cell can be cleared by it.
    static let mitoticClearance = 20.0
    /// Fraction of tumour lattice cells with a nucleus (the rest is cytoplasm); stroma has 0.15.
    static let tumourCellularity = 0.8
    static let stromaCellularity = 0.15

    func cellCentre(_ i: Int, _ j: Int) -> (x: Double, y: Double) {
        let c = Double(SyntheticSlide.cell)
        return ((Double(i) + 0.15 + 0.7 * hashUnit(seedCells, i, j, 1)) * c, (Double(j) + 0.15 + 0.7 * hashUnit(seedCells, i, j, 2)) * c)
    }

    /// The patchy density of stroma lymphocytes (aggregates ~150 µm across), 0...1.
    func lymphocyteField(_ x: Double, _ y: Double) -> Double {
        SyntheticSlide.valueNoise(x / 300, y / 300, seedLymphocytes)
    }

    /// The centre of cell (i, j)'s nucleus if it is a mitotic figure. Cheap hashes first: the tissue class
    /// (the costly part) is looked up for ~`mitosisRate` of the cells only.
    func mitosisCentre(cellX i: Int, cellY j: Int) -> (x: Double, y: Double)? {
        guard hashUnit(seedCells, i, j, 6) < spec.mitosisRate, hashUnit(seedCells, i, j, 3) < spec.look.tumourCellularity else { return nil }
        let p = cellCentre(i, j)
        guard p.x < Double(spec.width), p.y < Double(spec.height), tissueClass(x: p.x, y: p.y) == .tumour else { return nil }
        return p
    }

    func clearedByMitosis(cellX i: Int, cellY j: Int, x: Double, y: Double) -> Bool {
        for dj in -1...1 {
            for di in -1...1 where di != 0 || dj != 0 {
                if let m = mitosisCentre(cellX: i + di, cellY: j + dj), hypot(m.x - x, m.y - y) < SyntheticSlide.mitoticClearance { return true }
            }
        }
        return false
    }

    /// The nucleus of lattice cell (i, j), if it has one.
    ///
    /// Tumour cells (80 % of tumour lattice cells) are, by one uniform draw u: mitotic if u < mitosisRate,
    /// else apoptotic with probability apoptosisRate, a lymphocyte with tumourLymphocyteRate, else an
    /// interphase tumour nucleus. Stroma cells: a fibroblast (15 %), else a lymphocyte with probability
    /// 2·stromaLymphocyteRate·field. Any non-mitotic nucleus within `mitoticClearance` of a mitosis is absent.
    public func nucleus(cellX i: Int, cellY j: Int) -> SyntheticNucleus? {
        let (x, y) = cellCentre(i, j)
        guard x < Double(spec.width), y < Double(spec.height) else { return nil }
        let presence = hashUnit(seedCells, i, j, 3)
        let angle = .pi * hashUnit(seedCells, i, j, 4)
        let size = hashUnit(seedCells, i, j, 5), shape = hashUnit(seedCells, i, j, 7)
        let kind: SyntheticNucleus.Kind
        switch tissueClass(x: x, y: y) {
        case .tumour:
            guard presence < spec.look.tumourCellularity else { return nil }
            let u = hashUnit(seedCells, i, j, 6)
            if u < spec.mitosisRate {
                let extent = mitoticFigure(cellX: i, cellY: j).extent
                return SyntheticNucleus(x: x, y: y, a: extent.a, b: extent.b, angle: angle, kind: .mitosis)
            }
            let v = u - spec.mitosisRate
            kind = v < spec.apoptosisRate ? .apoptotic : (v < spec.apoptosisRate + spec.tumourLymphocyteRate ? .lymphocyte : .tumour)
        case .stroma:
            if presence < SyntheticSlide.stromaCellularity {
                kind = .stroma
            } else if presence < SyntheticSlide.stromaCellularity + 2 * spec.stromaLymphocyteRate * lymphocyteField(x, y) {
                kind = .lymphocyte
            } else {
                return nil
            }
        case .background, .ink:
            return nil
        }
        if clearedByMitosis(cellX: i, cellY: j, x: x, y: y) { return nil }
        switch kind {
        case .tumour:
            let r = (5.0 + 2.5 * size) * spec.look.nucleusScale
            return SyntheticNucleus(x: x, y: y, a: r, b: r * (0.8 + 0.2 * shape), angle: angle, kind: .tumour)
        case .stroma:
            return SyntheticNucleus(x: x, y: y, a: 7 + 2 * size, b: 2.2, angle: angle, kind: .stroma)
        case .lymphocyte:
            let r = 3.3 + 0.8 * size
            return SyntheticNucleus(x: x, y: y, a: r, b: r * (0.9 + 0.1 * shape), angle: angle, kind: .lymphocyte)
        case .apoptotic:
            let r = (2.6 + 0.8 * size) * spec.look.apoptoticScale
            return SyntheticNucleus(x: x, y: y, a: r, b: r, angle: angle, kind: .apoptotic)
        case .mitosis:
            preconditionFailure("returned above")
        }
    }

    /// Nuclei whose centres lie in [x0, x1) × [y0, y1) (level-0 pixels).
    public func nuclei(x0: Double, y0: Double, x1: Double, y1: Double) -> [SyntheticNucleus] {
        let c = Double(SyntheticSlide.cell)
        var out: [SyntheticNucleus] = []
        for j in Int((y0 / c).rounded(.down))...Int((y1 / c).rounded(.down)) {
            for i in Int((x0 / c).rounded(.down))...Int((x1 / c).rounded(.down)) {
                if let n = nucleus(cellX: i, cellY: j), n.x >= x0, n.x < x1, n.y >= y0, n.y < y1 { out.append(n) }
            }
        }
        return out
    }

    // MARK: Mitotic figures

    enum MitoticPhase { case metaphase, prometaphase, anaphase }

    /// The shape of cell (i, j)'s mitotic figure: phase, its size parameters and the extent (semi-axes along
    /// and across the figure's axis). Metaphase 50 % (a ragged plate seen edge-on), prometaphase 30 %
    /// (clustered clumps), anaphase/telophase 20 % (two parallel groups moving apart).
    func mitoticFigure(cellX i: Int, cellY j: Int) -> (phase: MitoticPhase, length: Double, width: Double, extent: (a: Double, b: Double)) {
        let p = hashUnit(seedCells, i, j, 30), s1 = hashUnit(seedCells, i, j, 31), s2 = hashUnit(seedCells, i, j, 32)
        // The look's size factor scales the drawn figure (`drawMitosis`) and so its extent too.
        let k = spec.look.mitosisScale
        if p < 0.5 {
            let half = 9 + 2 * s1, width = 3.6 + 0.8 * s2
            return (.metaphase, half, width, ((half + 3) * k, (width + 3) * k))
        } else if p < 0.8 {
            let radius = 7 + 1.5 * s1
            return (.prometaphase, radius, radius, ((radius + 2.5) * k, (radius + 2.5) * k))
        } else {
            let half = 6.5 + 1.5 * s1, gap = 5 + 2.5 * s2
            return (.anaphase, half, gap, ((half + 3) * k, (gap + 2.5) * k))
        }
    }

    /// Adds cell (i, j)'s nucleus `n` to the marks of a region.
    func draw(_ n: SyntheticNucleus, cellX i: Int, cellY j: Int, into marks: inout CellMarks) {
        func u(_ k: Int) -> Double { hashUnit(seedCells, i, j, 40 + k) }
        switch n.kind {
        case .tumour, .stroma:
            marks.nucleus(cx: n.x, cy: n.y, a: n.a, b: n.b, angle: n.angle, strength: n.kind == .tumour ? spec.look.nucleusStain : 0.7)
        case .lymphocyte:
            marks.nucleus(cx: n.x, cy: n.y, a: n.a, b: n.b, angle: n.angle, strength: 1.05 + 0.1 * u(0))
        case .apoptotic:
            // Retraction space around shrunken, hypereosinophilic cytoplasm around a pyknotic nucleus, half
            // of them broken into one or two fragments (karyorrhexis).
            let k = spec.look.apoptoticScale
            marks.clear(cx: n.x, cy: n.y, inner: 6.5 * k, outer: 9 * k, level: 0.35)
            marks.stain(cx: n.x, cy: n.y, radius: (5.8 + 1.2 * u(0)) * k, eosin: 0.3)
            marks.nucleus(cx: n.x, cy: n.y, a: n.a, b: n.b, angle: n.angle, strength: 1.6)
            if u(1) < 0.5 {
                for k in 0..<(u(2) < 0.5 ? 1 : 2) {
                    let t = 2 * Double.pi * u(3 + k), d = n.a + 0.8 + 1.2 * u(5 + k), r = 1.2 + 0.6 * u(7 + k)
                    marks.nucleus(cx: n.x + d * cos(t), cy: n.y + d * sin(t), a: r, b: r, angle: 0, strength: 1.6)
                }
            }
        case .mitosis:
            drawMitosis(n, cellX: i, cellY: j, into: &marks)
        }
    }

    /// A mitotic figure: clumps of condensed chromatin (each a small dark ellipse) laid out by phase, in a
    /// clear halo. Clump positions jitter so every outline is ragged and no two figures are alike.
    func drawMitosis(_ n: SyntheticNucleus, cellX i: Int, cellY j: Int, into marks: inout CellMarks) {
        func u(_ k: Int) -> Double { hashUnit(seedCells, i, j, 100 + k) }
        let figure = mitoticFigure(cellX: i, cellY: j)
        let ca = cos(n.angle), sa = sin(n.angle)
        // The look scales the figure's layout and clumps (k) and its darkness (dark: 1 for the standard look).
        let k = spec.look.mitosisScale, dark = spec.look.mitosisStain / 1.45
        // A clump at (s along the figure's axis, t across it).
        func clump(_ s: Double, _ t: Double, a: Double, b: Double, turn: Double, strength: Double) {
            let s = s * k, t = t * k
            marks.nucleus(cx: n.x + s * ca - t * sa, cy: n.y + s * sa + t * ca, a: a * k, b: b * k, angle: n.angle + turn, strength: strength * dark)
        }
        if spec.look.halo < 1 { marks.clear(cx: n.x, cy: n.y, inner: 14, outer: 18, level: spec.look.halo) }
        switch figure.phase {
        case .metaphase:
            let half = figure.length, width = figure.width
            for k in 0..<9 {
                let s = (-1 + 2 * Double(k) / 8) * half * 0.85 + 1.2 * (u(k) - 0.5), t = 1.6 * (u(10 + k) - 0.5)
                clump(s, t, a: 2.8 + 0.8 * u(20 + k), b: width * (0.75 + 0.25 * u(30 + k)), turn: 0.6 * (u(40 + k) - 0.5), strength: 1.45 + 0.25 * u(50 + k))
            }
            // Chromosome arms sticking out of the plate: the ragged outline.
            for k in 0..<5 {
                let s = (2 * u(60 + k) - 1) * half * 0.8, side: Double = u(70 + k) < 0.5 ? -1 : 1
                clump(s, side * (width + 1), a: 1.1, b: 2.2, turn: 0.5 * (u(80 + k) - 0.5), strength: 1.5)
            }
        case .prometaphase:
            for k in 0..<16 {
                let r = figure.length * (u(k)).squareRoot(), t = 2 * Double.pi * u(20 + k)
                clump(r * cos(t), r * sin(t), a: 2.4 + 0.8 * u(40 + k), b: 1.9 + 0.6 * u(60 + k), turn: 2 * .pi * u(80 + k), strength: 1.45 + 0.25 * u(100 + k))
            }
        case .anaphase:
            let half = figure.length, gap = figure.width
            for (g, side) in [-1.0, 1.0].enumerated() {
                for k in 0..<7 {
                    let q = 10 * g + k
                    let s = (-1 + 2 * Double(k) / 6) * half + 1.0 * (u(q) - 0.5), t = side * gap + 1.2 * (u(20 + q) - 0.5)
                    clump(s, t, a: 2.6 + 0.6 * u(40 + q), b: 2.2 + 0.6 * u(60 + q), turn: 0.6 * (u(80 + q) - 0.5), strength: 1.45 + 0.25 * u(100 + q))
                }
            }
        }
    }
}

/// What the cells of a region add to its stain, per pixel of the region: haematoxylin and eosin optical
/// density, and a factor that clears the background stain (halos, retraction spaces).
struct CellMarks {
    let x0: Int, y0: Int, width: Int, height: Int
    var haematoxylin: [Float], eosin: [Float], clearing: [Float]
    /// Granular chromatin: relative amplitude of a 2 px speckle on every nucleus's density (0: smooth).
    var grain = 0.0
    var grainSeed: UInt64 = 0

    init(x: Int, y: Int, width: Int, height: Int) {
        x0 = x; y0 = y; self.width = width; self.height = height
        haematoxylin = [Float](repeating: 0, count: width * height)
        eosin = haematoxylin
        clearing = [Float](repeating: 1, count: width * height)
    }

    /// The region's pixels within `radius` of (cx, cy), as (index, dx, dy) from each pixel's centre.
    private func pixels(cx: Double, cy: Double, radius: Double) -> [(index: Int, dx: Double, dy: Double)] {
        let r = Int(radius.rounded(.up)) + 1
        let lx = max(x0, Int(cx.rounded(.down)) - r), hx = min(x0 + width - 1, Int(cx.rounded(.down)) + r)
        let ly = max(y0, Int(cy.rounded(.down)) - r), hy = min(y0 + height - 1, Int(cy.rounded(.down)) + r)
        guard lx <= hx, ly <= hy else { return [] }
        var out: [(index: Int, dx: Double, dy: Double)] = []
        out.reserveCapacity((hx - lx + 1) * (hy - ly + 1))
        for y in ly...hy {
            for x in lx...hx { out.append(((y - y0) * width + (x - x0), Double(x) + 0.5 - cx, Double(y) + 0.5 - cy)) }
        }
        return out
    }

    /// A nucleus (or chromatin clump): an ellipse of haematoxylin, darker towards the rim as in real nuclei.
    /// Overlaps take the darker value, so clumps merge into one figure instead of adding up.
    mutating func nucleus(cx: Double, cy: Double, a: Double, b: Double, angle: Double, strength: Double) {
        let ca = cos(angle), sa = sin(angle)
        for p in pixels(cx: cx, cy: cy, radius: max(a, b)) {
            let u = (p.dx * ca + p.dy * sa) / a, v = (-p.dx * sa + p.dy * ca) / b
            let d2 = u * u + v * v
            guard d2 < 1 else { continue }
            var value = strength * (0.85 + 0.15 * d2)
            if grain > 0 {
                let px = x0 + p.index % width, py = y0 + p.index / width
                value *= 1 + grain * (2 * hashUnit(grainSeed, px >> 1, py >> 1) - 1)
            }
            haematoxylin[p.index] = max(haematoxylin[p.index], Float(value))
        }
    }

    /// A disc of eosin (apoptotic cytoplasm).
    mutating func stain(cx: Double, cy: Double, radius: Double, eosin amount: Double) {
        for p in pixels(cx: cx, cy: cy, radius: radius) where p.dx * p.dx + p.dy * p.dy < radius * radius {
            eosin[p.index] = max(eosin[p.index], Float(amount))
        }
    }

    /// A halo: the background stain scaled by `level` within `inner`, back to full at `outer`.
    mutating func clear(cx: Double, cy: Double, inner: Double, outer: Double, level: Double) {
        for p in pixels(cx: cx, cy: cy, radius: outer) {
            let d = (p.dx * p.dx + p.dy * p.dy).squareRoot()
            guard d < outer else { continue }
            let f = d <= inner ? level : level + (1 - level) * SyntheticSlide.smooth((d - inner) / (outer - inner))
            clearing[p.index] = min(clearing[p.index], Float(f))
        }
    }
}
