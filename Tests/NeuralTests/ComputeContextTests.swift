import Foundation
import NICBasics
import XCTest
@testable import Neural

/// Thread budgets travel with each network: two networks in one process keep to their own budgets
/// and compute exactly what they compute alone.
final class ComputeContextTests: XCTestCase {
    static let yaml = """
    input: [16, 16, 3]
    layers:
      - conv: {filters: 16, kernel: 3, stride: 1, padding: same}
      - leaky_relu: 0.2
      - batchnorm: {}
      - conv: {filters: 32, kernel: 3, stride: 2, padding: same}
      - leaky_relu: 0.2
      - batchnorm: {}
      - separable_conv: {filters: 16, kernel: 3, stride: 2}
      - relu
      - flatten
      - dense: 8
      - dense: 1
    """

    /// `steps` Adam steps on fixed random batches; returns the weights and running statistics.
    static func train(seed: UInt64, compute: ComputeContext, steps: Int = 4, batch: Int = 24) throws -> [Tensor] {
        let net = try Architecture.parse(yaml: Self.yaml, file: "c.yaml").build(seed: seed)
        net.compute = compute
        let adam = Adam(learningRate: 1e-2)
        for step in 0..<steps {
            let x = GradCheck.random([batch, 16, 16, 3], seed: seed &* 100 &+ UInt64(step))
            net.zeroGrad()
            let y = try net.forward(x, training: true)
            let loss = try Loss.meanSquaredError(y, [Float](repeating: 0.5, count: batch))
            try net.backward(loss.gradient)
            adam.step(net.parameters)
        }
        _ = try net.forward(GradCheck.random([5, 16, 16, 3], seed: 9), training: false)
        return (net.parameters + net.buffers).map(\.value)
    }

    func testConcurrentNetworksKeepTheirBudgetsAndTheirResults() throws {
        let sequential = try [1, 2].map { try Self.train(seed: UInt64($0), compute: ComputeContext(threads: 1)) }

        let contexts = [ComputeContext(threads: 1), ComputeContext(threads: 1)]
        let results = Locked<[Int: Result<[Tensor], Error>]>([:])
        let done = DispatchGroup()
        for (index, compute) in contexts.enumerated() {
            done.enter()
            let thread = Thread {
                let outcome = Result { try ComputeContextTests.train(seed: UInt64(index + 1), compute: compute) }
                results.withLock { $0[index] = outcome }
                done.leave()
            }
            thread.start()
        }
        done.wait()
        for index in 0..<2 {
            let concurrent = try results.current[index]!.get()
            XCTAssertEqual(concurrent, sequential[index], "network \(index + 1): concurrent training changed its weights")
            XCTAssertEqual(contexts[index].peakWorkers, 1, "network \(index + 1) used more than its one thread")
        }
        XCTAssertNotEqual(sequential[0], sequential[1])
    }

    func testTwoThreadsRunTwoWorkersAndGiveTheSameWeights() throws {
        let two = ComputeContext(threads: 2), one = ComputeContext(threads: 1)
        let parallel = try Self.train(seed: 3, compute: two, steps: 2, batch: 64)
        XCTAssertEqual(two.peakWorkers, min(2, Compute.pieces), "work is cut into one piece per core")
        let serial = try Self.train(seed: 3, compute: one, steps: 2, batch: 64)
        XCTAssertEqual(one.peakWorkers, 1)
        // Work is cut for the machine, not the budget: the same bits on one thread or two.
        XCTAssertEqual(parallel, serial)
    }

    func testLargeGemmSplitsOverTheWorkers() {
        let (m, n, k) = (512, 192, 384)
        let a = GradCheck.random([m, k], seed: 1), b = GradCheck.random([k, n], seed: 2)
        func product(_ compute: ComputeContext, transB: Bool) -> Tensor {
            let bt = transB ? Conv2D.permute(b, [k, n], [1, 0]) : b
            var c = Tensor(zeros: [m, n])
            compute.run {
                a.data.withUnsafeBufferPointer { pa in
                    bt.data.withUnsafeBufferPointer { pb in
                        c.data.withUnsafeMutableBufferPointer { pc in
                            BLAS.sgemm(transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: k, b: pb.baseAddress!,
                                       ldb: transB ? k : n, c: pc.baseAddress!, ldc: n)
                        }
                    }
                }
            }
            return c
        }
        let two = ComputeContext(threads: 2)
        let truth = product(ComputeContext(threads: 1), transB: false)
        for transB in [false, true] {
            XCTAssertEqual(product(two, transB: transB), truth)
        }
        // Two blocks of a few milliseconds each: a loaded machine may run them one after the other on
        // the calling thread now and then, but not every time.
        for _ in 0..<50 where two.peakWorkers < min(2, Compute.pieces) { _ = product(two, transB: false) }
        XCTAssertEqual(two.peakWorkers, min(2, Compute.pieces))
        XCTAssertEqual(BLAS.gemmBlocks(m: 8, n: 8, k: 8), [0..<8])
    }
}
