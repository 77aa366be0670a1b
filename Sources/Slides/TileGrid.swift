import Foundation
import NICBasics

/// The stride = size grid of patches over a slide at a target µm/px: the positions a compressor encodes.
/// Cell (c, r) covers level-0 [c·w, (c+1)·w) × [r·h, (r+1)·h) with w = size·mpp / mppX (likewise h);
/// only whole cells inside the slide are part of the grid.
public struct TileGrid: Sendable {
    public let columns: Int
    public let rows: Int
    /// Cell size in level-0 pixels.
    public let cellWidth: Double
    public let cellHeight: Double
    /// Tissue fraction of every cell, row-major.
    public let tissue: [Double]

    public init(slide: Slide, mpp: Double, size: Int, mask: TissueMask) {
        cellWidth = Double(size) * mpp / slide.mppX
        cellHeight = Double(size) * mpp / slide.mppY
        columns = Int((Double(slide.width) / cellWidth).rounded(.down))
        rows = Int((Double(slide.height) / cellHeight).rounded(.down))
        tissue = mask.grid(cellWidth: cellWidth, cellHeight: cellHeight, columns: columns, rows: rows)
    }

    /// Level-0 top-left corner of a cell (what `Slide.readRegion` takes).
    public func origin(column c: Int, row r: Int) -> (x: Int, y: Int) {
        (Int((Double(c) * cellWidth).rounded()), Int((Double(r) * cellHeight).rounded()))
    }

    /// Level-0 centre of a cell (what patches.csv records).
    public func centre(column c: Int, row r: Int) -> (x: Int, y: Int) {
        (Int(((Double(c) + 0.5) * cellWidth).rounded()), Int(((Double(r) + 0.5) * cellHeight).rounded()))
    }

    /// Cells whose tissue fraction exceeds `minTissue` (the public NIC code keeps mask mean > 0.6), row-major.
    public func tissueCells(minTissue: Double) -> [(column: Int, row: Int)] {
        var out: [(Int, Int)] = []
        for r in 0..<rows { for c in 0..<columns where tissue[r * columns + c] > minTissue { out.append((c, r)) } }
        return out
    }
}

/// Reads many cells of a `TileGrid` fast: cells are grouped into blocks of `block` × `block` cells, each
/// block holding a wanted cell is read with one `readRegion` call and cut into cells; blocks are spread
/// over Dispatch workers. The default 2 × 2 blocks of 128 px cells are exactly the 256 px tiles most
/// scanners (and `nic synth`) write, so each compressed tile is decoded once, by one worker: reading
/// cell by cell from several threads makes threads decode the same tile at the same time (OpenSlide's
/// cache does not share a decode in flight), and larger blocks decode tiles that hold no wanted cell.
///
/// Within a block, cells sit at multiples of `size` pixels of the read resolution. When level 0's µm/px
/// is not an exact multiple of the target (0.499 read as 0.5), a cell may thus be up to block × 0.3 %
/// of a cell (≈ 0.4 px for 2 × 2 blocks of 128 px) from where a single-cell read would put it.
public struct GridReader: Sendable {
    public let slide: Slide
    public let grid: TileGrid
    public let mpp: Double
    public let size: Int
    public let block: Int
    public let tolerance: Double

    public init(slide: Slide, grid: TileGrid, mpp: Double, size: Int, block: Int = 2, tolerance: Double = 0.02) {
        self.slide = slide
        self.grid = grid
        self.mpp = mpp
        self.size = size
        self.block = max(1, block)
        self.tolerance = tolerance
    }

    /// Reads `cells` and hands each to `deliver(index in cells, patch)` — from several threads at once, in
    /// no particular order. The first read error is thrown after all workers stop.
    public func read(_ cells: [(column: Int, row: Int)], workers: Int, deliver: @escaping @Sendable (Int, RGBImage) -> Void) throws {
        var blocks: [Int: [(Int, Int, Int)]] = [:]  // block key → (index, dc, dr)
        let blockColumns = (grid.columns + block - 1) / block
        for (i, cell) in cells.enumerated() {
            let key = (cell.row / block) * blockColumns + cell.column / block
            blocks[key, default: []].append((i, cell.column % block, cell.row % block))
        }
        let keys = blocks.keys.sorted()
        let failure = FirstError()
        let n = max(1, min(workers, keys.count))
        let frozen = blocks
        // Contiguous shares of the row-major blocks: each worker walks its own part of the slide, so
        // neighbouring blocks (which may share pyramid tiles at other levels) stay in one worker's cache use.
        DispatchQueue.concurrentPerform(iterations: n) { w in
            for k in (w * keys.count / n)..<((w + 1) * keys.count / n) {
                if failure.hasError { return }
                let key = keys[k]
                let bc = (key % blockColumns) * block, br = (key / blockColumns) * block
                let origin = grid.origin(column: bc, row: br)
                let cols = min(block, grid.columns - bc), rows = min(block, grid.rows - br)
                do {
                    let image = try slide.readRegion(x: origin.x, y: origin.y, width: cols * size, height: rows * size, mpp: mpp, tolerance: tolerance)
                    for (index, dc, dr) in frozen[key]! {
                        deliver(index, image.crop(x: dc * size, y: dr * size, width: size, height: size))
                    }
                } catch {
                    failure.record(error)
                }
            }
        }
        try failure.rethrow()
    }
}
