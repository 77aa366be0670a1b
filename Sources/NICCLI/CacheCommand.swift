import ArgumentParser
import Flow
import Foundation

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache", abstract: "Inspect, verify and clean the cache.",
        subcommands: [List.self, Verify.self, GC.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List cache entries.")
        @OptionGroup var cacheOption: CacheOption

        func run() throws {
            let cache = try cacheOption.open(.existing)
            let entries = cache.entries()
            let formatter = ISO8601DateFormatter()
            print("key           pipeline/node                    type          size        last used")
            for entry in entries {
                let owner = entry.manifest.map { "\($0.pipeline)/\($0.node)" } ?? "(no manifest)"
                print("\(entry.key.prefix(12))  \(owner.padding(toLength: 31, withPad: " ", startingAt: 0))  \((entry.manifest?.type ?? "?").padding(toLength: 12, withPad: " ", startingAt: 0))  \(formatBytes(entry.bytes).padding(toLength: 10, withPad: " ", startingAt: 0))  \(formatter.string(from: entry.lastUsed))")
            }
            print("\(entries.count) entries, \(formatBytes(entries.reduce(0) { $0 + $1.bytes })) in \(cache.root.path)")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "verify", abstract: "Re-check every checksum; damaged entries are set aside so the next run recomputes them.")
        @OptionGroup var cacheOption: CacheOption
        @Flag(name: .long, help: "Report damage but leave damaged entries in place.") var keep = false

        func run() throws {
            let cache = try cacheOption.open(.existing)
            let result = cache.verify(setAsideDamaged: !keep)
            for problem in result.problems {
                standardError("damaged: \(problem)")
            }
            if result.problems.isEmpty {
                print("verified \(result.checked) entries: all checksums match")
            } else {
                let setAside = keep ? 0 : result.problems.filter { $0.notSetAside == nil }.count
                standardError("\(result.problems.count) of \(result.checked) entries damaged\(setAside == 0 ? "" : "; \(setAside) set aside in \(cache.quarantine.path), the next run recomputes them")")
                throw ExitCode(ExitStatus.failed)
            }
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Remove entries that none of the given pipelines references, and/or not used for a given age.",
            discussion: "With pipelines only: removes every entry their current plans do not reference. With --older-than only: removes entries not used within that age. With both: removes entries that are unreferenced and old.")
        @Argument(help: "Pipelines whose entries to keep.") var pipelines: [String] = []
        @Option(name: .long, help: "Age like 30d, 12h, 45m, 90s.") var olderThan: String?
        @Flag(name: .long, help: "Only list what would be removed.") var dryRun = false
        @OptionGroup var cacheOption: CacheOption

        func validate() throws {
            if pipelines.isEmpty && olderThan == nil {
                throw ValidationError("name the pipelines whose entries to keep, or give --older-than (or both)")
            }
            if let olderThan, parseAge(olderThan) == nil {
                throw ValidationError("--older-than: expected a number followed by d, h, m or s (like 30d), got '\(olderThan)'")
            }
        }

        func run() throws {
            let cache = try cacheOption.open(.existing)
            var keep: Set<String>?
            if !pipelines.isEmpty {
                var keys = Set<String>()
                for file in pipelines {
                    let plan = try Planner.plan(try loadGraph(file), cache: cache)
                    keys.formUnion(plan.nodes.map(\.key))
                }
                keep = keys
            }
            let cutoff = olderThan.flatMap(parseAge).map { Date().addingTimeInterval(-$0) }
            let result = cache.collectGarbage(keep: keep, olderThan: cutoff, dryRun: dryRun)
            for entry in result.removed {
                print("\(dryRun ? "would remove" : "removed") \(entry.key.prefix(12))  \(entry.manifest.map { "\($0.pipeline)/\($0.node)" } ?? "(no manifest)")  \(formatBytes(entry.bytes))")
            }
            for entry in result.inUse {
                print("kept    \(entry.key.prefix(12))  \(entry.manifest.map { "\($0.pipeline)/\($0.node)" } ?? "(no manifest)")  in use by a running nic")
            }
            for (entry, reason) in result.failed {
                standardError("cannot remove \(entry.url.path): \(reason)")
            }
            print("\(dryRun ? "would free" : "freed") \(formatBytes(result.removed.reduce(0) { $0 + $1.bytes })) in \(result.removed.count) entries"
                  + (result.inUse.isEmpty ? "" : "; \(result.inUse.count) in use by running nic processes kept"))
            if !result.failed.isEmpty {
                standardError("\(result.failed.count) entries could not be removed")
                throw ExitCode(ExitStatus.failed)
            }
        }
    }
}

func parseAge(_ text: String) -> TimeInterval? {
    guard let unit = text.last, let number = Double(text.dropLast()), number >= 0 else { return nil }
    switch unit {
    case "d": return number * 86400
    case "h": return number * 3600
    case "m": return number * 60
    case "s": return number
    default: return nil
    }
}

func formatBytes(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
