import Foundation

/// Why a slide (or a file meant to be one) cannot be used. Always names the file, so that a failure in
/// a cohort of hundreds of slides points at the one to fix.
public struct SlideError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        case notFound
        case unsupportedFormat
        case unreadable
        case missingResolution
        case outOfBounds
        case invalidArgument
        case writeFailed
    }

    public let kind: Kind
    public let path: String
    public let reason: String

    public init(_ kind: Kind, path: String, _ reason: String) {
        self.kind = kind
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}
