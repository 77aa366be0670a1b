@testable import Flow
import Foundation
import NICBasics
import XCTest

/// The executor file: what it sets, every mistake at its line, and the job scripts built from it.
final class ExecutorConfigTests: XCTestCase {
    func parse(_ text: String) throws -> ExecutorConfig { try ExecutorConfig.parse(text: text, file: "nic.executor.yaml") }

    func errors(_ text: String) -> [String] {
        do {
            _ = try parse(text)
            return []
        } catch let errors as SpecErrors {
            return errors.errors.map { "\($0.location?.line ?? 0): \($0.message)" }
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    func testEverySettingIsRead() throws {
        let config = try parse("""
        slurm:
          partition: batch
          account: lab
          qos: normal
          time: 2h
          mem: 4G
          cpus: 2
          max_array_size: 500
          max_jobs: 20
          poll_seconds: 5
          sbatch_flags: ["--constraint=avx2", "--exclusive"]
          nodes:
            compressor: {cpus: 4, mem: 8GB, time: 1-12:00:00}
            fast_compress: {time: 30m, partition: short}
        """)
        let slurm = config.slurm
        XCTAssertEqual(slurm.defaults, SlurmResources(cpus: 2, mem: "4G", time: "02:00:00", partition: "batch", qos: "normal"))
        XCTAssertEqual(slurm.account, "lab")
        XCTAssertEqual(slurm.maxArraySize, 500)
        XCTAssertEqual(slurm.maxJobs, 20)
        XCTAssertEqual(slurm.pollSeconds, 5)
        XCTAssertEqual(slurm.sbatchFlags, ["--constraint=avx2", "--exclusive"])
        // A node's type overrides the defaults, its name overrides its type.
        XCTAssertEqual(slurm.resources(node: "other", type: "describe"), slurm.defaults)
        XCTAssertEqual(slurm.resources(node: "compress", type: "compressor"),
                       SlurmResources(cpus: 4, mem: "8G", time: "1-12:00:00", partition: "batch", qos: "normal"))
        XCTAssertEqual(slurm.resources(node: "fast_compress", type: "compressor"),
                       SlurmResources(cpus: 4, mem: "8G", time: "00:30:00", partition: "short", qos: "normal"))
    }

    func testEmptyFileGivesDefaults() throws {
        XCTAssertEqual(try parse(""), ExecutorConfig())
        XCTAssertEqual(try parse("slurm: {}").slurm, SlurmConfig())
    }

    func testMistakesAreReportedAtTheirLines() {
        XCTAssertEqual(errors("""
        slurm:
          partiton: batch
          cpus: two
          mem: lots
          time: soon
          max_jobs: 0
          sbatch_flags: [constraint=avx2]
          nodes:
            compressor: {cpu: 2}
            encoder: 4
        local: {}
        """), [
            "2: unknown key 'partiton'; expected one of 'partition', 'account', 'qos', 'time', 'mem', 'cpus', 'max_array_size', 'max_jobs', 'sbatch_flags', 'poll_seconds', 'nodes' (did you mean 'partition'?)",
            "3: 'cpus' must be a positive whole number, found 'two'",
            "4: 'mem' must be an amount of memory such as 4096 (MiB), 512M, 8G or 1T, found 'lots'",
            "5: 'time' must be a duration such as 90 (minutes), 30m, 2h, 1d, 01:30:00 or 1-12:00:00, found 'soon'",
            "6: 'max_jobs' must be a positive whole number, found '0'",
            "7: each of 'sbatch_flags' must be one sbatch option starting with '-', such as --constraint=avx2, found 'constraint=avx2'",
            "9: unknown key 'cpu'; expected one of 'partition', 'qos', 'time', 'mem', 'cpus' (did you mean 'cpus'?)",
            "10: the resources of 'encoder' must be a mapping such as {cpus: 2, mem: 8G, time: 2h}, found an integer (4)",
            "11: unknown key 'local' at the top of the executor file; expected 'slurm'",
        ])
        XCTAssertEqual(errors("slurm: [1, 2]"), ["1: 'slurm' must be a mapping of settings (partition, time, mem, ...), found a list"])
        XCTAssertFalse(errors("slurm:\n  cpus: [1").isEmpty, "a YAML syntax error is an error")
    }

    func testSlurmSpellings() {
        XCTAssertEqual(SlurmSpelling.memory("4096"), "4096M")
        XCTAssertEqual(SlurmSpelling.memory("16gb"), "16G")
        XCTAssertNil(SlurmSpelling.memory("0G"))
        XCTAssertNil(SlurmSpelling.memory("G"))
        XCTAssertEqual(SlurmSpelling.time("90"), "90")
        XCTAssertEqual(SlurmSpelling.time("36h"), "1-12:00:00")
        XCTAssertEqual(SlurmSpelling.time("45s"), "00:00:45")
        XCTAssertEqual(SlurmSpelling.time("01:30:00"), "01:30:00")
        XCTAssertEqual(SlurmSpelling.time("2-06"), "2-06")
        XCTAssertNil(SlurmSpelling.time("1:xx"))
        XCTAssertNil(SlurmSpelling.time("-5"))
        XCTAssertNil(SlurmSpelling.time("1-2-3"))
    }

    func testTheConfigFileIsFoundBesideThePipelineThenInTheWorkingFolder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-exec-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let pipelines = root.appendingPathComponent("pipelines"), work = root.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let pipeline = pipelines.appendingPathComponent("p.yaml")
        XCTAssertNil(try ExecutorConfig.locate(explicit: nil, pipeline: pipeline, workingFolder: work).file)
        try Data("slurm: {cpus: 3}".utf8).write(to: work.appendingPathComponent("nic.executor.yaml"))
        XCTAssertEqual(try ExecutorConfig.locate(explicit: nil, pipeline: pipeline, workingFolder: work).slurm.defaults.cpus, 3)
        try Data("slurm: {cpus: 5}".utf8).write(to: pipelines.appendingPathComponent("nic.executor.yaml"))
        XCTAssertEqual(try ExecutorConfig.locate(explicit: nil, pipeline: pipeline, workingFolder: work).slurm.defaults.cpus, 5)
        XCTAssertThrowsError(try ExecutorConfig.locate(explicit: root.appendingPathComponent("missing.yaml").path, pipeline: pipeline, workingFolder: work)) { error in
            XCTAssertTrue("\(error)".contains("executor config file not found"), "\(error)")
        }
    }

    func testJobScriptCarriesTheResourcesAndRunsTheWorker() throws {
        var config = try parse("""
        slurm:
          partition: batch
          account: lab
          time: 1h
          sbatch_flags: ["--constraint=avx2"]
          nodes:
            describe: {cpus: 2, mem: 2G}
        """).slurm
        config.maxJobs = 4
        let run = URL(fileURLWithPath: "/shared/runs/20260101-000000-p")
        let runner = SlurmRunner(config: config, runFolder: run, nic: "/opt/nic/bin/nic", pipeline: URL(fileURLWithPath: "/shared/p q.yaml"),
                                 cache: URL(fileURLWithPath: "/shared/cache"))
        let script = runner.script(node: "stats", type: "describe")
        XCTAssertEqual(script.text, """
        #!/bin/bash
        #SBATCH --job-name=nic-20260101-000000-p
        #SBATCH --output=/shared/runs/20260101-000000-p/slurm/stats-%j.log
        #SBATCH --chdir=\(FileManager.default.currentDirectoryPath)
        #SBATCH --ntasks=1
        #SBATCH --partition=batch
        #SBATCH --account=lab
        #SBATCH --cpus-per-task=2
        #SBATCH --mem=2G
        #SBATCH --time=01:00:00
        #SBATCH --constraint=avx2
        # nic node 'stats'
        exec /opt/nic/bin/nic worker '/shared/p q.yaml' --node stats --cache /shared/cache --exit-record /shared/runs/20260101-000000-p/slurm/stats.exit.json

        """)
    }

    func testQueueLinesAreParsed() {
        XCTAssertEqual(SlurmRunner.parseQueue("12|RUNNING\n13_4|PENDING\n\n14|COMPLETED\ngarbage\n"),
                       ["12": "RUNNING", "13_4": "PENDING", "14": "COMPLETED"])
    }

    /// An array task's own SLURM_JOB_ID is a number of its own; squeue knows the task as <array>_<task>.
    func testAnArrayTaskIsNamedByItsArrayJob() {
        XCTAssertEqual(LockOwner.slurmJob(["SLURM_JOB_ID": "611", "SLURM_ARRAY_JOB_ID": "610", "SLURM_ARRAY_TASK_ID": "0"]), "610_0")
        XCTAssertEqual(LockOwner.slurmJob(["SLURM_JOB_ID": "77"]), "77")
        XCTAssertNil(LockOwner.slurmJob([:]))
    }

    /// Progress lines count a node's array tasks: ended ones by their final state, others by squeue's.
    func testJobCountsFollowTheStates() {
        var counts = JobCounts()
        counts.add(ended: nil, state: "PENDING", gone: false)
        counts.add(ended: nil, state: nil, gone: false)          // submitted, not listed yet
        counts.add(ended: nil, state: "RUNNING", gone: false)
        counts.add(ended: nil, state: "COMPLETED", gone: false)
        counts.add(ended: nil, state: "PENDING", gone: true)     // left the queue unseen
        counts.add(ended: "CANCELLED", state: "RUNNING", gone: false)
        XCTAssertEqual(counts, JobCounts(queued: 2, running: 1, done: 3, failed: 1))
        XCTAssertEqual(counts.description, "2 queued · 1 running · 3/6 done (1 failed)")
    }
}
