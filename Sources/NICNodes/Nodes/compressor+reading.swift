import Foundation
import NICBasics
import Slides

extension Compressor {
    /// The stages sharing a slide's thread budget.
    static let reading = 0, encoding = 1
}

/// Where the compression of a slide went (`time.json` beside its grid; the node's `time.json` sums
/// its slides, whether compressed by this run, an earlier one or a cluster's array tasks). Reading runs on its own thread beside the encoding;
/// `waiting_for_tiles_s` is the part of it the encoding did not hide.
public struct CompressionTime: Codable, Equatable, Sendable {
    public var total = 0.0
    public var tissue = 0.0
    /// From the start of the slide to its first encoded batch.
    public var firstEncode = 0.0
    public var reading = 0.0
    public var waitingForTiles = 0.0
    /// Orienting, encoding and storing codes.
    public var encoding = 0.0
    public var writing = 0.0
    /// Patches encoded (tissue cells × orientations).
    public var patches = 0
    /// The most threads reading and encoding held at once (never above the node's budget).
    public var mostThreads = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case total = "total_s", tissue = "tissue_s", firstEncode = "first_encode_s", reading = "reading_s"
        case waitingForTiles = "waiting_for_tiles_s", encoding = "encoding_s", writing = "writing_s", patches
        case mostThreads = "most_threads"
    }

    /// Adds another slide's time (the first-encode delay of the first slide is kept).
    mutating func add(_ other: CompressionTime) {
        if patches == 0 && total == 0 { firstEncode = other.firstEncode }
        total += other.total
        tissue += other.tissue
        reading += other.reading
        waitingForTiles += other.waitingForTiles
        encoding += other.encoding
        writing += other.writing
        patches += other.patches
        mostThreads = max(mostThreads, other.mostThreads)
    }

    var metrics: [String: Double] {
        ["time_total_s": total, "time_tissue_s": tissue, "time_first_encode_s": firstEncode, "time_reading_s": reading,
         "time_waiting_for_tiles_s": waitingForTiles, "time_encoding_s": encoding, "time_writing_s": writing,
         "patches_per_s": total > 0 ? Double(patches) / total : 0]
    }
}

/// Reads the tiles of a slide's batches of grid cells, in order, on a thread of its own, up to
/// `depth` batches ahead of the encoder. Each small piece of a batch is read with the threads the
/// shared budget has free, given back after, so an encoder that needs them gets them soon.
final class TileReader: Sendable {
    let slide: Slide
    let grid: TileGrid
    let mpp: Double
    let size: Int
    /// Level-0 offsets of a cell's windows from its origin (one, (0, 0), without shifts).
    let offsets: [(x: Int, y: Int)]
    let budget: SharedBudget
    let stage: Int
    let depth: Int
    /// Tiles read per request of threads: short enough that the budget moves between the stages often.
    static let piece = 32

    private let readAhead = Condition(ReadAhead())

    /// The batches read and not yet taken, and the reader's thread, guarded by the condition that
    /// the reader (queue full) and the encoder (queue empty; stopping, the reader still running) wait on.
    private struct ReadAhead {
        var ready: [Result<[RGBImage], Error>] = []
        var stopped = false
        var running = false
        var reading = 0.0
    }

    init(slide: Slide, grid: TileGrid, mpp: Double, size: Int, shifts: Int = 1, budget: SharedBudget, stage: Int, depth: Int = 2) {
        self.slide = slide
        self.grid = grid
        self.mpp = mpp
        self.size = size
        self.offsets = Self.offsets(shifts: shifts, cellWidth: grid.cellWidth, cellHeight: grid.cellHeight)
        self.budget = budget
        self.stage = stage
        self.depth = max(1, depth)
    }

    func start(_ batches: [[(column: Int, row: Int)]]) {
        readAhead.withLock { $0.running = true }
        let thread = Thread { [self] in
            defer { readAhead.withLock(wakingWaiters: true) { $0.running = false } }
            let compute = ComputeContext(threads: 1)
            for batch in batches {
                let stop = readAhead.withLock(until: { $0.stopped || $0.ready.count < depth }) { $0.stopped }
                if stop { return }
                let clock = Stopwatch()
                let result = Result { try read(batch, compute: compute) }
                readAhead.withLock(wakingWaiters: true) { readAhead in
                    readAhead.reading += clock.seconds
                    readAhead.ready.append(result)
                }
                if case .failure = result { return }
            }
        }
        thread.name = "nic.tile-reader"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Window offsets of `shifts` × `shifts` windows, row-major: ((i + ½)/shifts − ½) of a cell in x and y.
    static func offsets(shifts: Int, cellWidth: Double, cellHeight: Double) -> [(x: Int, y: Int)] {
        let steps = (0..<shifts).map { (Double($0) + 0.5) / Double(shifts) - 0.5 }
        return steps.flatMap { dy in steps.map { dx in (Int((dx * cellWidth).rounded()), Int((dy * cellHeight).rounded())) } }
    }

    /// Each cell's windows, consecutive (a window past the slide's edge reads white there).
    private func read(_ cells: [(column: Int, row: Int)], compute: ComputeContext) throws -> [RGBImage] {
        let offsets = self.offsets
        let windows = cells.flatMap { cell in offsets.map { (column: cell.column, row: cell.row, dx: $0.x, dy: $0.y) } }
        var images: [RGBImage] = []
        images.reserveCapacity(windows.count)
        for start in stride(from: 0, to: windows.count, by: Self.piece) {
            let piece = Array(windows[start..<min(windows.count, start + Self.piece)])
            let threads = budget.acquire(stage, most: Int.max)
            defer { budget.release(stage) }
            compute.setThreads(threads)
            let (slide, grid, mpp, size) = (self.slide, self.grid, self.mpp, self.size)
            images += try compute.run {
                try concurrentMap(piece.count, workers: threads) { i in
                    let origin = grid.origin(column: piece[i].column, row: piece[i].row)
                    return try slide.readRegion(x: origin.x + piece[i].dx, y: origin.y + piece[i].dy, width: size, height: size, mpp: mpp)
                }
            }
        }
        return images
    }

    /// The next batch's tiles, in order; rethrows a read error.
    func next() throws -> [RGBImage] {
        try readAhead.withLock(until: { !$0.ready.isEmpty }, wakingWaiters: true) { $0.ready.removeFirst() }.get()
    }

    /// Seconds the reader spent reading.
    var readingSeconds: Double {
        readAhead.withLock { $0.reading }
    }

    /// Stops reading and waits for the reader's thread to finish its batch.
    func stop() {
        readAhead.withLock(wakingWaiters: true) { $0.stopped = true }
        readAhead.wait(until: { !$0.running })
    }
}
