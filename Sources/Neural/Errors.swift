import Foundation

/// Everything that can go wrong in the neural core names the layer (or file position) and what was expected.
public enum NeuralError: Error, CustomStringConvertible, Equatable {
    /// A layer got an input whose shape it cannot take.
    case shapeMismatch(layer: String, expected: String, got: [Int])
    /// A loss value, activation or gradient became NaN or infinite.
    case nonFinite(layer: String, what: String)
    /// `backward` was called without a training-mode `forward` before it.
    case noForwardState(layer: String)
    /// A bad architecture description: `file:line:column: message`.
    case architecture(location: String, message: String)
    /// Weights file problems: missing tensor, wrong shape or dtype, bad header.
    case weights(file: String, message: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .shapeMismatch(layer, expected, got):
            return "layer '\(layer)': expected input \(expected), got shape \(got)"
        case let .nonFinite(layer, what):
            return "layer '\(layer)': \(what) became NaN or infinite"
        case let .noForwardState(layer):
            return "layer '\(layer)': backward needs a forward pass with training: true first"
        case let .architecture(location, message):
            return "\(location): error: \(message)"
        case let .weights(file, message):
            return "\(file): \(message)"
        case let .invalidArgument(message):
            return message
        }
    }
}
