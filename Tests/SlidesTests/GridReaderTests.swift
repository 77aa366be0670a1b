import Foundation
import NICBasics
import Synthetic
import ImageTestSupport
import XCTest
@testable import Slides

final class GridReaderTests: XCTestCase {
    /// Grid reading in tile-aligned blocks gives the same patches as one read per cell (exact at 0.5 µm/px).
    func testGridReaderMatchesSingleReads() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("s.tif")
        try SyntheticSlide(SyntheticSlideSpec(width: 1500, height: 1300, seed: 4)).write(to: url, compression: .jpeg(quality: 85))
        let slide = try Slide(url: url)
        let grid = TileGrid(slide: slide, mpp: 0.5, size: 128, mask: try TissueDetector().detect(slide))
        XCTAssertEqual(grid.columns, 11)
        XCTAssertEqual(grid.rows, 10)
        let cells = grid.tissueCells(minTissue: 0.6)
        XCTAssertGreaterThan(cells.count, 20)
        let collected = Locked<[Int: RGBImage]>([:])
        try GridReader(slide: slide, grid: grid, mpp: 0.5, size: 128).read(cells, workers: 2) { i, tile in collected.withLock { $0[i] = tile } }
        let got = collected.current
        XCTAssertEqual(got.count, cells.count)
        for (i, cell) in cells.enumerated() {
            let o = grid.origin(column: cell.column, row: cell.row)
            assertSameImage(try XCTUnwrap(got[i]), try slide.readRegion(x: o.x, y: o.y, width: 128, height: 128, mpp: 0.5), "cell \(cell)")
        }
    }
}
