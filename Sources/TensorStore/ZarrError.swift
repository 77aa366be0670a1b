/// Every failure in TensorStore: `path` is the file or folder concerned (empty when
/// there is none, e.g. a codec called on a bare buffer) and `message` says what was expected.
public struct ZarrError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }

    /// The same problem attributed to a file, for errors raised below the file level.
    func at(_ path: String) -> ZarrError {
        ZarrError(path: path, message: message)
    }
}
