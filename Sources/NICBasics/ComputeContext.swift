import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The thread budget of one computation (a pipeline node, a network's training or inference), and a
/// record of what it used. Several nodes may run at once in one process (`--jobs 2`), so the budget
/// travels with the call instead of living in OpenBLAS's or nic's process-wide state: every parallel
/// loop of the neural core takes its worker count from the context current on its thread. The engine
/// gives every running node one and re-divides the cores whenever a node starts or finishes, so a
/// node running alone uses the whole machine and two running together share it.
public final class ComputeContext: Sendable {
    private let activity: Locked<Activity>

    struct Activity {
        var threads: Int
        var mostThreads: Int
        var running = 0
        var peak = 0
    }

    public init(threads: Int) {
        activity = Locked(Activity(threads: max(1, threads), mostThreads: max(1, threads)))
    }

    /// Workers that may run at once: nic's own loops, convolution batch shares, inference chunks and
    /// GEMM row blocks all split their work into at most this many pieces when they start (OpenBLAS
    /// itself runs one thread, `Compute.configureProcess`). Results do not depend on it.
    public var threads: Int { activity.withLock { $0.threads } }

    /// A new budget, taken up by every loop that starts from now on.
    public func setThreads(_ threads: Int) {
        activity.withLock {
            $0.threads = max(1, threads)
            $0.mostThreads = max($0.mostThreads, $0.threads)
        }
    }

    /// The largest budget this context has had.
    public var mostThreads: Int { activity.withLock { $0.mostThreads } }

    /// Every core: what a `Network` uses unless given another context, and what layers called outside
    /// a network use.
    public static let allCores = ComputeContext(threads: ProcessInfo.processInfo.activeProcessorCount)

    /// How `cores` are shared by `running` computations: as evenly as possible, the first ones
    /// (the earliest started) taking the remainder, at least one each.
    public static func shares(cores: Int, running: Int) -> [Int] {
        guard running > 0 else { return [] }
        let base = cores / running, extra = cores % running
        return (0..<running).map { max(1, base + ($0 < extra ? 1 : 0)) }
    }

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

    /// Runs `body(i)` for every piece i in 0..<count on at most `threads` workers of this context
    /// (a worker takes pieces i, i + workers, …); loops inside a worker stay on its thread. How work is
    /// cut into pieces is the caller's choice and may not depend on `threads`, so that results do not
    /// depend on the budget a computation happened to get.
    public func runWorkers(_ count: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        let workers = min(count, threads)
        if workers == 1 { return worker { for i in 0..<count { body(i) } } }
        // Each piece touches its own part of the caller's buffers (every caller's contract), so the
        // one closure may run on several threads at once.
        withoutActuallyEscaping(body) { body in
            let pieces = DisjointAccess(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                worker { for i in Swift.stride(from: w, to: count, by: workers) { pieces.pointer(i) } }
            }
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
        precondition(pthread_key_create(&key, nil) == 0, "no thread-local key left for the compute context")  // invariant: one key per process, created once at start-up
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
