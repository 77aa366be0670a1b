import Foundation
import XCTest
@testable import Neural

/// Every architecture shipped under nodes/ builds at its declared input and gives what its users
/// expect: encoders a 128-d code (mean-RGB: 3), patient models a feature vector for a head.
final class ShippedArchitectureTests: XCTestCase {
    static let nodes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("nodes")

    func build(_ relative: String) throws -> Network {
        let file = Self.nodes.appendingPathComponent(relative).path
        return try Architecture.load(file: file).build(seed: 1)
    }

    func testEncodersGiveTheirCode() throws {
        for (name, code) in [("nic-encoder", 128), ("nic-encoder-128", 128), ("mean-rgb", 3)] {
            let net = try build("encoders/\(name).yaml")
            XCTAssertEqual(net.outputShape.reduce(1, *), code, name)
        }
        XCTAssertEqual(try build("encoders/nic-encoder-128.yaml").inputs.first?.shape, [128, 128, 3])
    }

    func testPatientModelsGiveAFeatureVector() throws {
        for name in ["nic-sepconv-small", "nic-sepconv8"] {
            let net = try build("patient/\(name).yaml")
            XCTAssertEqual(net.outputShape.count, 1, "\(name) must end in a vector for the head")
        }
    }

    func testBagModelsTakeCodesAndGiveOneOutputPerBag() throws {
        let head = try Architecture.parse(yaml: "layers: [{dense: 1}]\n", file: "head.yaml")
        for name in ["abmil-gated", "mil-mean"] {
            let arch = try Architecture.load(file: Self.nodes.appendingPathComponent("patient/\(name).yaml").path)
            XCTAssertNotNil(arch.pool, name)
            let model = try BagModel(architecture: arch, features: 128, head: head, seed: 1)
            let x = Tensor(shape: [30, 128], data: (0..<(30 * 128)).map { Float($0 % 17) / 17 })
            let (output, attention) = try model.forward(x, bags: [0..<10, 10..<30], training: false)
            XCTAssertEqual(output.shape, [2, 1], name)
            XCTAssertEqual(attention.reduce(0, +), 2, accuracy: 1e-4, "\(name): attention sums to 1 per bag")
        }
    }
}
