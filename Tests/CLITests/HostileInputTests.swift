import Foundation
import XCTest

/// Bad input as a hostile or clumsy user gives it, each case run through the real command line on a
/// small synthetic cohort: the process must exit with the expected status (never a trap), say what
/// is wrong in a sentence that names the place, and leave nothing of the failing node in the cache.
/// Set NIC_TRIAL_TABLE=<file> to get the table of outcomes (for release notes).
final class HostileInputTests: XCTestCase {
    /// One synthetic cohort and one cache for every case: upstream nodes computed by an earlier case
    /// are reused, as they would be for a user.
    nonisolated(unsafe) static var shared: Kit?

    override class func tearDown() { shared = nil }

    func kitWithCohort() throws -> Kit {
        if let kit = Self.shared { return kit }
        let kit = try Kit()
        let synth = try kit.run(["synth", "--out", "cohort", "--patients", "6", "--size", "1024", "--seed", "5",
                                 "--annotations", "4", "--second-slide-probability", "0"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for folder in ["nodes/encoders", "nodes/heads", "nodes/patient"] {
            try FileManager.default.createDirectory(at: kit.root.appendingPathComponent(folder).deletingLastPathComponent(), withIntermediateDirectories: true)
            try? FileManager.default.removeItem(at: kit.root.appendingPathComponent(folder))
            try FileManager.default.copyItem(at: repo.appendingPathComponent(folder), to: kit.root.appendingPathComponent(folder))
        }
        Self.shared = kit
        return kit
    }

    struct Case {
        var category: String
        var name: String
        /// Files to write before running (relative path → text); `{labels}` and `{patches}` in the
        /// pipeline name this case's copies.
        var setup: (Kit, String) throws -> Void = { _, _ in }
        var pipeline: String
        var command: [String] = ["run"]
        var status: Int32
        var fragment: String
        /// The node whose output must not be in the cache afterwards.
        var uncommitted: String?
    }

    static func pipeline(model: String = "", tiles: String = "{mode: grid, max_per_slide: 2}", training: Bool = false, extra: String = "") -> String {
        """
        pipeline: hostile
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: {labels}}
          annotations: {kind: table, path: {patches}}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort\(training ? ", annotations: annotations" : "")}, params: \(tiles)}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
          grids: {type: compressor, in: {slides: cohort, encoder: rgb}, params: {min_tissue: 0.3, previews: 0}}
        \(model.isEmpty ? "" : "  model: " + model)
        \(extra)
        """
    }

    static func model(head: String = "regression", target: String = "[score]", params: String = "") -> String {
        "{type: patient_model, in: {grids: grids}, params: {architecture: nodes/patient/nic-sepconv-small.yaml, head: nodes/heads/\(head).yaml, target: \(target), folds: 2, epochs: 1\(params)}}"
    }

    /// Rewrites column `column` of this case's labels.csv with `value(row index)`.
    static func labels(_ column: String, _ value: @escaping (Int) -> String) -> (Kit, String) throws -> Void {
        { kit, name in
            let text = try String(contentsOf: kit.root.appendingPathComponent("cohort/labels.csv"), encoding: .utf8)
            var lines = text.split(separator: "\n").map(String.init)
            let header = lines[0].split(separator: ",").map(String.init)
            let index = try XCTUnwrap(header.firstIndex(of: column))
            for row in 1..<lines.count {
                var fields = lines[row].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                fields[index] = value(row - 1)
                lines[row] = fields.joined(separator: ",")
            }
            try kit.write("\(name)/labels.csv", lines.joined(separator: "\n") + "\n")
        }
    }

    /// Appends rows to this case's copy of patches.csv.
    static func patches(_ rows: String) -> (Kit, String) throws -> Void {
        { kit, name in
            let text = try String(contentsOf: kit.root.appendingPathComponent("cohort/patches.csv"), encoding: .utf8)
            try kit.write("\(name)/patches.csv", text + rows + "\n")
        }
    }

    /// A flow sequence of a few hundred bytes whose aliases expand to 10^10 scalars.
    static let aliasBomb: String = {
        var levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in 1...9 { levels.append("&a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]") }
        return "[" + levels.joined(separator: ", ") + "]"
    }()

    static var cases: [Case] {
        let slide0 = "P001-1"
        var all: [Case] = []
        func label(_ name: String, _ setup: @escaping (Kit, String) throws -> Void, model: String, status: Int32 = 1, _ fragment: String) {
            all.append(Case(category: "labels", name: name, setup: setup, pipeline: pipeline(model: model), status: status, fragment: fragment, uncommitted: "model"))
        }
        label("NaN target", labels("score") { $0 == 1 ? "nan" : "\($0)" }, model: model(), "is not a finite number")
        label("infinite target", labels("score") { $0 == 2 ? "inf" : "\($0)" }, model: model(), "is not a finite number")
        label("survival without events", labels("event") { _ in "0" }, model: model(head: "cox", target: "[time, event]"), "no patient has an observed event")
        label("negative survival time", labels("time") { $0 == 0 ? "-3" : "\($0 + 1)" }, model: model(head: "cox", target: "[time, event]"), "must be a finite number ≥ 0")
        label("event not 0/1", labels("event") { $0 == 0 ? "2" : "\($0 % 2)" }, model: model(head: "cox", target: "[time, event]"), "0/1")
        label("one class for a binary target", labels("high_grade") { _ in "1" }, model: model(head: "binary", target: "[high_grade]"), "2 classes")
        label("missing target column", labels("score") { "\($0)" }, model: model(target: "[grade]"), "grade")
        all.append(Case(category: "labels", name: "patient without a label reported", setup: labels("score") { $0 == 3 ? "" : "\($0)" },
                        pipeline: pipeline(model: model()), status: 0, fragment: "without a label"))

        func patch(_ name: String, _ rows: String, _ fragment: String) {
            all.append(Case(category: "patches.csv", name: name, setup: patches(rows),
                            pipeline: pipeline(tiles: "{mode: training, per_task: 4}", training: true), status: 1, fragment: fragment, uncommitted: "tiles"))
        }
        patch("NaN coordinate", "\(slide0),nan,100,mitosis,1", "(patches.csv):74:2: x must be a finite number")
        patch("infinite coordinate", "\(slide0),100,inf,mitosis,1", "(patches.csv):74:3: y must be a finite number")
        patch("huge coordinate", "\(slide0),1e30,100,mitosis,1", "(patches.csv):74:2: x must be a finite number")
        patch("coordinate outside the slide", "\(slide0),5000,100,mitosis,1", "(patches.csv):74: patch outside the slide")
        patch("negative coordinate", "\(slide0),100,-40,mitosis,1", "(patches.csv):74: patch outside the slide")

        func param(_ name: String, _ pipeline: String, _ fragment: String) {
            all.append(Case(category: "params", name: name, pipeline: pipeline, command: ["validate"], status: 2, fragment: fragment))
        }
        param("mpp: 0", pipeline(tiles: "{mode: grid, mpp: 0}"), "mpp")
        param("folds: 1", pipeline(model: model(params: ", folds: 1").replacingOccurrences(of: "folds: 2, ", with: "")), "folds")
        param("previews: -1", pipeline().replacingOccurrences(of: "previews: 0", with: "previews: -1"), "previews")
        param("bootstrap: 10^12", pipeline(model: model(), extra: "  score: {type: evaluator, in: {predictions: model}, params: {bootstrap: 1000000000000}}"), "bootstrap")
        param("bootstrap: 1", pipeline(model: model(), extra: "  score: {type: evaluator, in: {predictions: model}, params: {bootstrap: 1}}"), "bootstrap")
        param("per_task: 10^12", pipeline(tiles: "{mode: training, per_task: 1000000000000}", training: true), "per_task")
        param("batch_size: 0", pipeline(model: model(params: ", batch_size: 0")), "batch_size")
        param("learning_rate: -1", pipeline(model: model(params: ", learning_rate: -1")), "learning_rate")
        param("learning_rate: .nan", pipeline(model: model(params: ", learning_rate: .nan")), "learning_rate")
        param("learning_rate: .inf", pipeline(model: model(params: ", learning_rate: .inf")), "learning_rate")
        param("epochs: 1e300", pipeline(model: model(params: ", epochs: 1e300").replacingOccurrences(of: "epochs: 1, ", with: "")), "epochs")

        all.append(Case(category: "resources", name: "alias bomb in the pipeline", pipeline: pipeline(tiles: "{mode: grid, tasks: \(aliasBomb)}"),
                        command: ["validate"], status: 2, fragment: "alias"))
        all.append(Case(category: "resources", name: "alias bomb in an architecture file", setup: { kit, name in
            try kit.write("\(name)/bomb.yaml", "name: bomb\ninput: [64, 64, 3]\nlayers: [global_avg_pool]\nnotes: " + aliasBomb + "\n")
        }, pipeline: pipeline().replacingOccurrences(of: "nodes/encoders/mean-rgb.yaml", with: "{case}/bomb.yaml"), command: ["validate"], status: 2, fragment: "alias"))
        all.append(Case(category: "resources", name: "nesting 100 000 deep", pipeline: pipeline(tiles: "{mode: grid, tasks: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"),
                        command: ["validate"], status: 2, fragment: "nest"))
        all.append(Case(category: "resources", name: "file param is a FIFO", setup: { kit, name in
            try FileManager.default.createDirectory(at: kit.root.appendingPathComponent(name), withIntermediateDirectories: true)
            XCTAssertEqual(mkfifo(kit.root.appendingPathComponent("\(name)/fifo.yaml").path, 0o644), 0)
        }, pipeline: pipeline().replacingOccurrences(of: "nodes/encoders/mean-rgb.yaml", with: "{case}/fifo.yaml"), command: ["validate"], status: 2, fragment: "not a regular file"))
        all.append(Case(category: "resources", name: "file param is /dev/zero", pipeline: pipeline().replacingOccurrences(of: "nodes/encoders/mean-rgb.yaml", with: "/dev/zero"),
                        command: ["validate"], status: 2, fragment: "not a regular file"))
        all.append(Case(category: "resources", name: "labels file is a FIFO (validate)", setup: { kit, name in
            XCTAssertEqual(mkfifo(kit.root.appendingPathComponent("\(name)/fifo.csv").path, 0o644), 0)
        }, pipeline: pipeline().replacingOccurrences(of: "labels: {labels}", with: "labels: {case}/fifo.csv"), command: ["validate"], status: 2, fragment: "not a regular file"))
        all.append(Case(category: "resources", name: "labels file is a FIFO (run)", setup: { kit, name in
            XCTAssertEqual(mkfifo(kit.root.appendingPathComponent("\(name)/fifo.csv").path, 0o644), 0)
        }, pipeline: pipeline().replacingOccurrences(of: "labels: {labels}", with: "labels: {case}/fifo.csv"), status: 2, fragment: "not a regular file"))
        all.append(Case(category: "resources", name: "labels file is /dev/zero (run)", pipeline: pipeline().replacingOccurrences(of: "labels: {labels}", with: "labels: /dev/zero"),
                        status: 2, fragment: "not a regular file"))
        all.append(Case(category: "resources", name: "labels path is a folder", pipeline: pipeline().replacingOccurrences(of: "labels: {labels}", with: "labels: cohort"),
                        command: ["validate"], status: 2, fragment: "is a folder"))

        func readOnly(_ name: String, _ command: [String]) {
            all.append(Case(category: "read-only commands", name: name, pipeline: pipeline(), command: command + ["--cache", "{case}/no-such-cache"],
                            status: 1, fragment: "no cache"))
        }
        readOnly("cache verify on a mistyped cache", ["cache", "verify"])
        readOnly("cache ls on a mistyped cache", ["cache", "ls"])
        readOnly("output on a mistyped cache", ["output", "{pipeline}", "grids"])
        readOnly("metrics on a mistyped cache", ["metrics", "{pipeline}"])
        all.append(Case(category: "read-only commands", name: "plan before the first run", pipeline: pipeline(),
                        command: ["plan", "{pipeline}", "--cache", "{case}/no-such-cache"], status: 0, fragment: "will run  no cached output"))
        return all
    }

    struct Outcome {
        var status: String
        var passed: Bool
        var detail: String
    }

    func testHostileInputsFailCleanly() throws {
        let kit = try kitWithCohort()
        var rows: [(Case, Outcome)] = []
        // NIC_TRIAL_FILTER=text runs only the cases whose name contains it.
        let filter = ProcessInfo.processInfo.environment["NIC_TRIAL_FILTER"]
        for (index, trial) in Self.cases.enumerated() where filter.map({ trial.name.contains($0) }) ?? true {
            let name = "case\(index)"
            try FileManager.default.createDirectory(at: kit.root.appendingPathComponent(name), withIntermediateDirectories: true)
            for file in ["labels.csv", "patches.csv"] where !FileManager.default.fileExists(atPath: kit.root.appendingPathComponent("\(name)/\(file)").path) {
                try? FileManager.default.copyItem(at: kit.root.appendingPathComponent("cohort/\(file)"), to: kit.root.appendingPathComponent("\(name)/\(file)"))
            }
            try trial.setup(kit, name)
            let before = Set(manifests(kit).map(\.url))
            let pipelineFile = "\(name)/p.yaml"
            try kit.write(pipelineFile, trial.pipeline.replacingOccurrences(of: "{labels}", with: "\(name)/labels.csv")
                .replacingOccurrences(of: "{patches}", with: "\(name)/patches.csv").replacingOccurrences(of: "{case}", with: name))
            let command = trial.command.map { $0.replacingOccurrences(of: "{case}", with: name).replacingOccurrences(of: "{pipeline}", with: pipelineFile) }
            let arguments = command.contains("{pipeline}") || command.contains(pipelineFile) || command.first == "cache" ? command : command + [pipelineFile]
            // A hang ends after two minutes (timeout's status 137), a memory runaway at 6 GiB.
            let result = try kit.run(arguments, wrapper: ["/usr/bin/timeout", "-s", "KILL", "120", "/usr/bin/prlimit", "--as=\(6 << 30)", "--"])
            let text = result.stdout + result.stderr
            var problems: [String] = []
            // timeout(1) kills its whole process group, itself included: SIGKILL is the 120 s limit.
            let status = result.status == 137 || (result.reason == .uncaughtSignal && result.status == SIGKILL) ? "no end (killed after 120 s)"
                : result.reason == .uncaughtSignal ? "killed by signal \(result.status)" : result.status > 128 ? "killed by signal \(result.status - 128)" : "exit \(result.status)"
            if result.reason == .uncaughtSignal || result.status != trial.status { problems.append("\(status), expected exit \(trial.status)") }
            if !text.contains(trial.fragment) { problems.append("no '\(trial.fragment)' in the output") }
            if let node = trial.uncommitted, manifests(kit).contains(where: { $0.node == node && !before.contains($0.url) }) {
                problems.append("'\(node)' of this case committed to the cache")
            }
            if trial.category == "read-only commands", FileManager.default.fileExists(atPath: kit.root.appendingPathComponent("\(name)/no-such-cache").path) {
                problems.append("a read-only command created the cache folder")
            }
            XCTAssertTrue(problems.isEmpty, "\(trial.category) / \(trial.name): \(problems.joined(separator: "; "))\n\(text.suffix(1500))")
            rows.append((trial, Outcome(status: status, passed: problems.isEmpty, detail: problems.joined(separator: "; "))))
            removeEntries(of: trial.uncommitted, kit)
        }
        if let path = ProcessInfo.processInfo.environment["NIC_TRIAL_TABLE"] {
            var table = "| category | case | outcome | ok |\n|---|---|---|---|\n"
            for (trial, outcome) in rows {
                table += "| \(trial.category) | \(trial.name) | \(outcome.status) | \(outcome.passed ? "yes" : "no: " + outcome.detail) |\n"
            }
            try table.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    func manifests(_ kit: Kit) -> [(node: String, url: URL)] {
        kit.files(under: ".nic/cache/objects").filter { $0.hasSuffix("/manifest.json") }.compactMap { relative in
            let url = kit.cacheDir.appendingPathComponent("objects").appendingPathComponent(relative)
            guard let data = try? Data(contentsOf: url), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let node = object["node"] as? String else { return nil }
            return (node, url.deletingLastPathComponent())
        }
    }

    /// A case that legitimately commits (a reported dropped patient) must not make the next case's check pass or fail.
    func removeEntries(of node: String?, _ kit: Kit) {
        for (name, url) in manifests(kit) where name == "model" || name == node { try? FileManager.default.removeItem(at: url) }
    }
}
