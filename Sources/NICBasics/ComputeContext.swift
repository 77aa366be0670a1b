import NICBasics
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The thread budget of one computation (a network's training or inference), and a record of what it
/// used. Several networks may run at once in one process (pipeline nodes with `--jobs 2`), so the
/// budget travels with the call instead of living in OpenBLAS's or nic's process-wide state: every
/// parallel loop of the neural core takes its worker count from the context current on its thread, and
/// the engine gives every node one, sized by `--jobs` (cores ÷ jobs).
public final class ComputeContext: Sendable {
    /// Workers that may run at once: nic's own loops, convolution batch shares, inference chunks and
    /// GEMM row blocks all split their work into at most this many pieces. OpenBLAS itself runs one
    /// thread (`Compute.configureProcess`).
    public let threads: Int
    private let activity = Locked(Activity())

    struct Activity {
        var running = 0
        var peak = 0
    }

    public init(threads: Int) {
        self.threads = max(1, threads)
    }

    /// Every core: what a `Network` uses unless given another context, and what layers called outside
    /// a network use.
    public static let allCores = ComputeContext(threads: ProcessInfo.processInfo.activeProcessorCount)

    /// The most workers of this context that ran at once (measured around each worker's body), so a
    /// caller can check that the budget held.
    public var peakWorkers: Int { activity.current.peak }

    public func resetPeakWorkers() {
        activity.withLock { $0.peak = $0.running }
    }

    /// Runs `body` with this context current on the calling thread (Network.forward/backward do).
    public func run<T>(_ body: () throws -> T) rethrows -> T {
        try CurrentCompute.with(self, worker: false, body)
    }

    /// Runs `body(i)` for i in 0..<count, each as one worker of this context: loops inside a worker stay
    /// on its thread. One piece runs on the calling thread; more run on Dispatch's pool, at most
    /// `count` at once (callers keep `count` ≤ `threads`).
    public func runWorkers(_ count: Int, _ body: (Int) -> Void) {
        if count == 1 { return worker { body(0) } }
        guard count > 1 else { return }
        // Each piece touches its own part of the caller's buffers (every caller's contract), so the
        // one closure may run on several threads at once.
        withoutActuallyEscaping(body) { body in
            let pieces = DisjointAccess(body)
            DispatchQueue.concurrentPerform(iterations: count) { i in worker { pieces.pointer(i) } }
        }
    }

    private func worker(_ body: () -> Void) {
        activity.withLock {
            $0.running += 1
            $0.peak = Swift.max($0.peak, $0.running)
        }
        defer { activity.withLock { $0.running -= 1 } }
        CurrentCompute.with(self, worker: true, body)
    }
}

/// The context current on this thread, and whether this thread is one of its workers. Thread-local,
/// because the workers of two networks run side by side on Dispatch's shared pool.
public enum CurrentCompute {
    private static let contextKey = makeKey()
    private static let workerKey = makeKey()

    private static func makeKey() -> pthread_key_t {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "no thread-local key left for the compute context")
        return key
    }

    /// The context of the Network call in progress on this thread, else every core.
    public static var context: ComputeContext {
        guard let p = pthread_getspecific(contextKey) else { return .allCores }
        return Unmanaged<ComputeContext>.fromOpaque(p).takeUnretainedValue()
    }

    /// True inside a worker: the caller already split the work, so loops here run on this thread.
    public static var isWorker: Bool { pthread_getspecific(workerKey) != nil }

    static func with<T>(_ context: ComputeContext, worker: Bool, _ body: () throws -> T) rethrows -> T {
        let savedContext = pthread_getspecific(contextKey), savedWorker = pthread_getspecific(workerKey)
        // The thread slot holds the context unretained; `withExtendedLifetime` keeps it alive meanwhile.
        pthread_setspecific(contextKey, Unmanaged.passUnretained(context).toOpaque())
        pthread_setspecific(workerKey, worker ? UnsafeRawPointer(bitPattern: 1) : nil)
        defer {
            pthread_setspecific(contextKey, savedContext)
            pthread_setspecific(workerKey, savedWorker)
        }
        return try withExtendedLifetime(context) { try body() }
    }
}
