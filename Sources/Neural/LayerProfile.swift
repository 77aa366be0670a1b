import Foundation
import NICBasics

/// Wall time per layer and direction, for `nic doctor bench --profile`: where a training step goes
/// (GEMM-heavy convolutions vs memory-bound normalisation and activations). Off by default; when on,
/// `Network` times every layer call on the calling thread (inference chunks on workers are included
/// once per chunk, so read inference figures as summed worker time).
public enum LayerProfile {
    public struct Entry: Sendable {
        public var forward = 0.0, backward = 0.0, calls = 0
    }

    nonisolated(unsafe) public static var enabled = false  // set once by `doctor bench --profile` before any network runs
    private static let state = Locked(Table())

    private struct Table {
        var entries: [String: Entry] = [:]
        var order: [String] = []
    }

    public static func reset() {
        state.withLock { $0 = Table() }
    }

    static func measure<T>(_ layer: String, backward: Bool, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        state.withLock { table in
            if table.entries[layer] == nil { table.order.append(layer) }
            var e = table.entries[layer, default: Entry()]
            if backward { e.backward += seconds } else { e.forward += seconds; e.calls += 1 }
            table.entries[layer] = e
        }
        return result
    }

    /// One line per layer in network order: seconds per call forward and backward, and share of the total.
    public static func table(title: String) -> String {
        let (entries, order) = state.withLock { ($0.entries, $0.order) }
        let total = entries.values.reduce(0) { $0 + $1.forward + $1.backward }
        func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
        var lines = ["\(title) (ms per call; share of profiled time)", "  \(pad("layer", 20))  forward  backward  share"]
        for name in order {
            let e = entries[name]!
            let calls = Double(max(1, e.calls))
            lines.append("  " + pad(name, 20) + String(format: " %8.2f  %8.2f  %4.1f%%", 1000 * e.forward / calls, 1000 * e.backward / calls,
                                                       100 * (e.forward + e.backward) / max(total, 1e-12)))
        }
        return lines.joined(separator: "\n")
    }
}
