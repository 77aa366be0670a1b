import Foundation
import NICBasics
import Yams

/// Where nodes run. Never part of a cache key: a pipeline gives the same keys and results on either.
public enum ExecutorKind: String, CaseIterable, Sendable {
    case local
    case slurm
}

/// What one Slurm job asks for. nil fields are left to the cluster's defaults.
public struct SlurmResources: Equatable, Sendable {
    public var cpus: Int?
    /// Slurm's `--mem` spelling: a number of MiB, or with a K/M/G/T suffix.
    public var mem: String?
    /// Slurm's `--time` spelling (minutes, `HH:MM:SS`, `D-HH:MM`, ...).
    public var time: String?
    public var partition: String?
    public var qos: String?

    public init(cpus: Int? = nil, mem: String? = nil, time: String? = nil, partition: String? = nil, qos: String? = nil) {
        self.cpus = cpus
        self.mem = mem
        self.time = time
        self.partition = partition
        self.qos = qos
    }

    /// `other`'s fields where set, ours otherwise.
    func overridden(by other: SlurmResources) -> SlurmResources {
        SlurmResources(cpus: other.cpus ?? cpus, mem: other.mem ?? mem, time: other.time ?? time,
                       partition: other.partition ?? partition, qos: other.qos ?? qos)
    }
}

/// The `slurm:` section of an executor file (`nic.executor.yaml`):
///
///     slurm:
///       partition: batch
///       account: mylab
///       time: 1h
///       mem: 4G
///       cpus: 2
///       max_array_size: 1000
///       max_jobs: 200
///       sbatch_flags: ["--constraint=avx2"]
///       nodes:                 # by node type or node name (a name wins over a type)
///         compressor: {cpus: 2, mem: 8G, time: 2h}
public struct SlurmConfig: Equatable, Sendable {
    public var defaults = SlurmResources()
    public var account: String?
    /// Array tasks per `sbatch --array` (chunks beyond); the cluster's `MaxArraySize` bounds it too.
    public var maxArraySize = 1000
    /// Jobs of this run queued or running at once.
    public var maxJobs = 100
    public var sbatchFlags: [String] = []
    /// The longest wait between two `squeue` rounds (the wait starts short and backs off to this).
    public var pollSeconds = 30.0
    /// Resource overrides by node type or node name.
    public var overrides: [String: SlurmResources] = [:]

    public init() {}

    /// A node's resources: the defaults, then its type's override, then its name's.
    public func resources(node: String, type: String) -> SlurmResources {
        var r = defaults
        if let byType = overrides[type] { r = r.overridden(by: byType) }
        if let byName = overrides[node], node != type { r = r.overridden(by: byName) }
        return r
    }
}

public struct ExecutorConfig: Equatable, Sendable {
    public var slurm = SlurmConfig()
    /// The file it came from (nil: built-in defaults).
    public var file: String?

    public init() {}

    public static let defaultFileName = "nic.executor.yaml"

    /// `explicit`, else `nic.executor.yaml` beside the pipeline, else in the working folder, else defaults.
    public static func locate(explicit: String?, pipeline: URL, workingFolder: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws -> ExecutorConfig {
        if let explicit {
            guard FileManager.default.fileExists(atPath: explicit) else {
                throw SpecErrors([SpecError("executor config file not found: \(explicit)", at: nil)])
            }
            return try load(URL(fileURLWithPath: explicit), display: explicit)
        }
        for folder in [pipeline.deletingLastPathComponent(), workingFolder] {
            let candidate = folder.appendingPathComponent(defaultFileName)
            if FileManager.default.fileExists(atPath: candidate.path) { return try load(candidate, display: candidate.path) }
        }
        return ExecutorConfig()
    }

    public static func load(_ url: URL, display: String) throws -> ExecutorConfig {
        let text: String
        do { text = try YAMLLimits.readText(url, display: display, at: SourceLocation(file: display, line: 1, column: 1)) }
        catch let error as SpecError { throw SpecErrors([error]) }
        var config = try parse(text: text, file: display)
        config.file = display
        return config
    }

    static let topKeys = ["slurm"]
    static let slurmKeys = ["partition", "account", "qos", "time", "mem", "cpus", "max_array_size", "max_jobs", "sbatch_flags", "poll_seconds", "nodes"]
    static let resourceKeys = ["partition", "qos", "time", "mem", "cpus"]

    /// Every problem at once, each at its file:line:column.
    public static func parse(text: String, file: String) throws -> ExecutorConfig {
        var errors: [SpecError] = []
        func loc(_ node: Yams.Node?) -> SourceLocation {
            SourceLocation(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1)
        }
        func fail(_ message: String, _ node: Yams.Node?) { errors.append(SpecError(message, at: loc(node))) }

        let root: Yams.Node?
        do { root = try YAMLLimits.compose(text, file: file) }
        catch let error as YamlError { throw SpecErrors([SpecParser.yamlSyntaxError(error, text: text, file: file)]) }
        catch let error as SpecError { throw SpecErrors([error]) }
        var config = ExecutorConfig()
        guard let root else { return config }  // an empty file: defaults
        guard let top = root.mapping else {
            throw SpecErrors([SpecError("expected a mapping with the key 'slurm' at the top of the executor file, found \(SpecParser.describeKind(root))", at: loc(root))])
        }

        func string(_ value: Yams.Node, _ what: String) -> String? {
            guard let s = value.scalar?.string, !s.isEmpty, value.tagName != .null else {
                fail("\(what) must be a non-empty string, found \(SpecParser.describeKind(value))", value)
                return nil
            }
            return s
        }
        func positive(_ value: Yams.Node, _ what: String) -> Int? {
            guard let s = value.scalar?.string, let n = Int(s), n > 0 else {
                fail("\(what) must be a positive whole number, found '\(value.scalar?.string ?? SpecParser.describeKind(value))'", value)
                return nil
            }
            return n
        }
        func resources(_ pairs: Yams.Node.Mapping, allowed: [String]) -> SlurmResources {
            var r = SlurmResources()
            for (keyNode, value) in pairs {
                guard let key = keyNode.scalar?.string else { fail("keys must be plain names", keyNode); continue }
                switch key {
                case "partition": r.partition = string(value, "'partition'")
                case "qos": r.qos = string(value, "'qos'")
                case "cpus": r.cpus = positive(value, "'cpus'")
                case "mem":
                    if let s = value.scalar?.string, let mem = SlurmSpelling.memory(s) { r.mem = mem }
                    else { fail("'mem' must be an amount of memory such as 4096 (MiB), 512M, 8G or 1T, found '\(value.scalar?.string ?? SpecParser.describeKind(value))'", value) }
                case "time":
                    if let s = value.scalar?.string, let time = SlurmSpelling.time(s) { r.time = time }
                    else { fail("'time' must be a duration such as 90 (minutes), 30m, 2h, 1d, 01:30:00 or 1-12:00:00, found '\(value.scalar?.string ?? SpecParser.describeKind(value))'", value) }
                default:
                    if !allowed.contains(key) {
                        fail("unknown key '\(key)'; expected one of \(Suggest.list(allowed))\(Suggest.hint(for: key, among: allowed))", keyNode)
                    }
                }
            }
            return r
        }

        for (keyNode, value) in top {
            guard let key = keyNode.scalar?.string else { fail("keys must be plain names", keyNode); continue }
            guard key == "slurm" else {
                fail("unknown key '\(key)' at the top of the executor file; expected \(Suggest.list(topKeys))\(Suggest.hint(for: key, among: topKeys))", keyNode)
                continue
            }
            guard let slurm = value.mapping else {
                fail("'slurm' must be a mapping of settings (partition, time, mem, ...), found \(SpecParser.describeKind(value))", value)
                continue
            }
            config.slurm.defaults = resources(slurm, allowed: slurmKeys)
            for (settingNode, setting) in slurm {
                switch settingNode.scalar?.string {
                case "account": config.slurm.account = string(setting, "'account'")
                case "max_array_size": config.slurm.maxArraySize = positive(setting, "'max_array_size'") ?? config.slurm.maxArraySize
                case "max_jobs": config.slurm.maxJobs = positive(setting, "'max_jobs'") ?? config.slurm.maxJobs
                case "poll_seconds":
                    if let s = setting.scalar?.string, let seconds = Double(s), seconds >= 0.1, seconds.isFinite { config.slurm.pollSeconds = seconds }
                    else { fail("'poll_seconds' must be a number of seconds of at least 0.1, found '\(setting.scalar?.string ?? SpecParser.describeKind(setting))'", setting) }
                case "sbatch_flags":
                    guard let flags = setting.sequence else {
                        fail("'sbatch_flags' must be a list of sbatch options such as [\"--constraint=avx2\"], found \(SpecParser.describeKind(setting))", setting)
                        continue
                    }
                    for flag in flags {
                        guard let s = flag.scalar?.string, s.hasPrefix("-") else {
                            fail("each of 'sbatch_flags' must be one sbatch option starting with '-', such as --constraint=avx2, found '\(flag.scalar?.string ?? SpecParser.describeKind(flag))'", flag)
                            continue
                        }
                        if s.contains("\n") { fail("an sbatch option may not span lines", flag); continue }
                        config.slurm.sbatchFlags.append(s)
                    }
                case "nodes":
                    guard let nodes = setting.mapping else {
                        fail("'nodes' must map node types or node names to resources ({cpus: 2, mem: 8G, time: 2h}), found \(SpecParser.describeKind(setting))", setting)
                        continue
                    }
                    for (nameNode, overrideNode) in nodes {
                        guard let name = nameNode.scalar?.string else { fail("node names must be plain names", nameNode); continue }
                        guard let pairs = overrideNode.mapping else {
                            fail("the resources of '\(name)' must be a mapping such as {cpus: 2, mem: 8G, time: 2h}, found \(SpecParser.describeKind(overrideNode))", overrideNode)
                            continue
                        }
                        config.slurm.overrides[name] = resources(pairs, allowed: resourceKeys)
                    }
                default: break  // resources, or an unknown key already reported
                }
            }
        }
        if !errors.isEmpty { throw SpecErrors(errors) }
        return config
    }
}

/// Slurm's own spellings of memory and time, from the friendlier ones the executor file accepts.
enum SlurmSpelling {
    /// "4096", "512M", "8G", "8GB", "1T" → "4096M"-style values sbatch accepts; nil if not an amount.
    static func memory(_ text: String) -> String? {
        var s = text.trimmingCharacters(in: .whitespaces).uppercased()
        if s.hasSuffix("B") && s.count > 1 { s.removeLast() }
        guard let last = s.last else { return nil }
        if last.isNumber { return Int(s).flatMap { $0 > 0 ? "\($0)M" : nil } }
        guard "KMGT".contains(last), let n = Int(s.dropLast()), n > 0 else { return nil }
        return "\(n)\(last)"
    }

    /// "90" (minutes), "30m", "2h", "1d", "45s", or Slurm's own "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM",
    /// "D-HH:MM:SS" → a Slurm time; nil if not a duration.
    static func time(_ text: String) -> String? {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        if let n = Int(s), n > 0 { return "\(n)" }
        if let unit = s.last, "smhd".contains(unit), let n = Int(s.dropLast()), n > 0 {
            let seconds = n * ["s": 1, "m": 60, "h": 3600, "d": 86400][String(unit)]!  // invariant: unit is one of the four keys
            let days = seconds / 86400, h = seconds % 86400 / 3600, m = seconds % 3600 / 60, sec = seconds % 60
            return days > 0 ? String(format: "%d-%02d:%02d:%02d", days, h, m, sec) : String(format: "%02d:%02d:%02d", h, m, sec)
        }
        // Slurm's forms: digits separated by ':' with an optional "D-" day prefix.
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        if parts.count == 2 { guard Int(parts[0]) != nil else { return nil } }
        let clock = parts.last!.split(separator: ":", omittingEmptySubsequences: false)  // invariant: split yields at least one part
        guard (1...3).contains(clock.count), clock.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else { return nil }
        if parts.count == 1 && clock.count == 1 { return nil }  // a bare number was handled above
        return s
    }
}
