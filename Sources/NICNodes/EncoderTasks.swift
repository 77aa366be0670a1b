import Flow
import Foundation

/// The encoder's `tasks:` param: which of the PatchSet's tasks to train and how. Written as a list of
/// task names (`[tissue, nuclei]`), or task → head name (`{tissue: classification}`), or task →
/// `{head: NAME, weight: W}`; absent: every task with its default head. Decoded (and checked at
/// `nic validate`, typos and all) by the engine's YAML decoder.
struct EncoderTasks: YAMLDecodable {
    struct Request: Equatable, Sendable {
        var task: String
        /// nil: the task kind's default head.
        var head: String?
        var weight: Double
    }

    /// nil: every task of the PatchSet.
    var requests: [Request]?

    /// `{head, weight}`; a bare head name is the same as `{head: NAME}`.
    struct Options: Decodable {
        var head: String?
        var weight: Double
        enum CodingKeys: String, CodingKey { case head, weight }

        init(from decoder: Decoder) throws {
            if let name = try? decoder.singleValueContainer().decode(String.self) {
                head = name
                weight = 1
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            head = try c.decodeIfPresent(String.self, forKey: .head)
            weight = try c.decodeIfPresent(Double.self, forKey: .weight) ?? 1
            guard weight >= 0, weight.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: .weight, in: c, debugDescription: "a task's weight must be a number ≥ 0, found \(weight)")
            }
        }
    }

    init(from decoder: Decoder) throws {
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            requests = nil
        } else if let names = try? single.decode([String].self) {
            requests = names.map { Request(task: $0, head: nil, weight: 1) }
        } else {
            let map = try decoder.container(keyedBy: TaskName.self)
            requests = try map.allKeys.sorted { $0.stringValue < $1.stringValue }.map { key in
                let options = try map.decode(Options.self, forKey: key)
                return Request(task: key.stringValue, head: options.head, weight: options.weight)
            }
        }
    }
}

/// A task's name as a mapping key (`tasks: {tissue: …}`): task files and params map names to options.
struct TaskName: CodingKey {
    var stringValue: String
    init(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}
