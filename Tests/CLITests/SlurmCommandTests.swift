// `picotron submit-slurm` and `picotron extract-metrics` without a Slurm: --dry-run, and a fake `sbatch` (and
// `sinfo`) that the test writes on PATH, which records its arguments and answers as Slurm does. The run on a
// real one-node Slurm is scripts/ci-slurm.sh.

import Foundation
import XCTest

final class SlurmCommandTests: XCTestCase {
    var tmp: URL!
    var runs: URL { tmp.appendingPathComponent("runs") }
    var bin: URL { tmp.appendingPathComponent("bin") }
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-slurm-\(UUID())")
        try? FileManager.default.createDirectory(at: tmp.appendingPathComponent("bin"), withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    /// `picotron create-config` into runs/<name>.
    func makeRun(_ name: String, _ flags: [String]) throws {
        let r = try Picotron.run(["create-config", "--out_dir", runs.path, "--exp_name", name, "--model_name", "micro",
                                  "--seq_len", "32"] + flags, timeout: 60)
        XCTAssertEqual(r.status, 0, r.output)
    }

    /// An executable `name` in bin/ running `body` (sh).
    func fake(_ name: String, _ body: String) throws {
        let file = bin.appendingPathComponent(name)
        try Data("#!/bin/sh\n\(body)\n".utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file.path)
    }

    /// sbatch as Slurm's: one line per call in bin/sbatch.log, "Submitted batch job 42".
    func fakeSbatch() throws {
        try fake("sbatch", "echo \"$@\" >> \"\(bin.path)/sbatch.log\"; echo 'Submitted batch job 42'")
    }

    /// `picotron arguments` with only bin/ on PATH (no real Slurm is ever reached).
    func picotron(_ arguments: [String]) throws -> Picotron.BoundedResult {
        try Picotron.run(arguments, timeout: 60, environment: ["PATH": bin.path])
    }

    func text(_ path: String) -> String {
        (try? String(contentsOf: runs.appendingPathComponent(path), encoding: .utf8)) ?? ""
    }

    func testDryRunWritesOneJobScriptPerRunSizedFromItsGrid() throws {
        try makeRun("dp2_tp2", ["--dp", "2", "--tp", "2", "--mbs", "2"])
        try makeRun("big", ["--dp", "2", "--pp", "2", "--cp", "2", "--tp", "2", "--grad_acc_steps", "2"])
        let r = try picotron(["submit-slurm", "--inp_dir", runs.path, "--dry-run", "--time", "00:20:00"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("dp2_tp2: 4 tasks on 1 node (4 per node), srun: wrote"), r.output)
        XCTAssert(r.output.contains("big: 16 tasks on 2 nodes (8 per node)"), r.output)
        XCTAssert(r.output.contains("dry run: not submitted"), r.output)

        let script = text("dp2_tp2/job.slurm")
        let run = runs.appendingPathComponent("dp2_tp2").path
        for line in ["#SBATCH --job-name=dp2_tp2", "#SBATCH --nodes=1", "#SBATCH --ntasks=4", "#SBATCH --ntasks-per-node=4",
                     "#SBATCH --cpus-per-task=1", "#SBATCH --time=00:20:00", "#SBATCH --output=\(run)/log_%j.out",
                     "#SBATCH --signal=B:USR1@120", "set_status running", "set_status completed", "set_status fail",
                     "set_status oom", "set_status timeout",
                     "srun --mpi=pmix --kill-on-bad-exit=1 '",
                     "train --config '\(run)/config.json' --out-dir \"$run\" --metrics-out \"$run/metrics.jsonl\""] {
            XCTAssert(script.contains(line), "\(line) missing from:\n\(script)")
        }
        let big = text("big/job.slurm")
        for line in ["#SBATCH --nodes=2", "#SBATCH --ntasks=16", "#SBATCH --ntasks-per-node=8"] {
            XCTAssert(big.contains(line), "\(line) missing from:\n\(big)")
        }
        XCTAssertEqual(text("dp2_tp2/status.txt"), "init\n", "a dry run submits nothing")
        XCTAssertEqual(text("big/status.txt"), "init\n")

        let m = try picotron(["submit-slurm", "--inp_dir", runs.path, "--dry-run", "--launcher", "mpirun",
                              "--tasks-per-node", "2", "--cpus-per-task", "4", "--env", "OMPI_MCA_btl=tcp,self"])
        XCTAssertEqual(m.status, 0, m.output)
        let viaMPI = text("dp2_tp2/job.slurm")
        for line in ["#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --cpus-per-task=4",
                     "mpirun -np \"$SLURM_NTASKS\" --oversubscribe '", "export OMPI_MCA_btl='tcp,self'"] {
            XCTAssert(viaMPI.contains(line), "\(line) missing from:\n\(viaMPI)")
        }
        XCTAssertFalse(viaMPI.contains("srun"), viaMPI)
    }

    func testSubmitsWithSbatchAndResubmitsOnlyTheStatusesAsked() throws {
        try makeRun("a", ["--dp", "2"])
        try makeRun("b", ["--tp", "2"])
        try fakeSbatch()
        // picotron's README: `submit_slurm_jobs.py --inp_dir tmp/llama-7B --qos high --hf_token <HF_TOKEN>`.
        let r = try picotron(["submit-slurm", "--inp_dir", runs.path, "--qos", "high", "--hf_token", "x"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("--hf_token is not used"), r.output)
        XCTAssert(r.output.contains("a: 2 tasks on 1 node (2 per node), srun: submitted job 42, status pending"), r.output)
        XCTAssert(text("a/job.slurm").contains("--qos=high") || text("a/job.slurm").contains("--qos high"),
                  text("a/job.slurm"))
        XCTAssert(r.output.contains("submitted 2 of 2 runs"), r.output)
        let calls = { (try? String(contentsOf: self.bin.appendingPathComponent("sbatch.log"), encoding: .utf8)) ?? "" }
        XCTAssertEqual(calls(), "\(runs.path)/a/job.slurm\n\(runs.path)/b/job.slurm\n")
        XCTAssertEqual(text("a/status.txt"), "pending\n")

        // Nothing is submitted twice by default: both runs are past init.
        let again = try picotron(["submit-slurm", "--inp_dir", runs.path])
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssert(again.output.contains("a: skipped (status pending; --only pending submits it)"), again.output)
        XCTAssertEqual(calls().split(separator: "\n").count, 2)

        // The job script writes these; --only picks the failed run alone.
        try Data("fail\n".utf8).write(to: runs.appendingPathComponent("a/status.txt"))
        try Data("completed\n".utf8).write(to: runs.appendingPathComponent("b/status.txt"))
        let only = try picotron(["submit-slurm", "--inp_dir", runs.path, "--only", "fail,timeout"])
        XCTAssertEqual(only.status, 0, only.output)
        XCTAssert(only.output.contains("b: skipped (status completed"), only.output)
        XCTAssert(only.output.contains("submitted 1 of 2 runs, 1 skipped by --only fail,timeout"), only.output)
        XCTAssertEqual(calls().split(separator: "\n").last.map(String.init), "\(runs.path)/a/job.slurm")
        XCTAssertEqual(text("a/status.txt"), "pending\n")
        XCTAssertEqual(text("b/status.txt"), "completed\n")
    }

    func testErrorsSayWhatIsMissingAndHowToGetIt() throws {
        let none = try picotron(["submit-slurm", "--inp_dir", tmp.path, "--dry-run"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssert(none.output.contains("no config.json below \(tmp.path)"), none.output)
        XCTAssert(none.output.contains("picotron create-config --out_dir"), none.output)
        let missing = try picotron(["extract-metrics", "--inp_dir", tmp.appendingPathComponent("nowhere").path])
        XCTAssert(missing.output.contains("no such folder"), missing.output)

        try makeRun("a", ["--dp", "2"])
        let noSbatch = try picotron(["submit-slurm", "--inp_dir", runs.path])
        XCTAssertNotEqual(noSbatch.status, 0)
        for says in ["sbatch is not on PATH", "scripts/slurm-local.sh", "apt-get install slurm-client", "--dry-run"] {
            XCTAssert(noSbatch.output.contains(says), "should say \(says):\n\(noSbatch.output)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs.appendingPathComponent("a/job.slurm").path))

        let badOnly = try picotron(["submit-slurm", "--inp_dir", runs.path, "--dry-run", "--only", "failed"])
        XCTAssertNotEqual(badOnly.status, 0)
        XCTAssert(badOnly.output.contains("failed is not a status; use init, pending, running"), badOnly.output)

        // sbatch refuses: the run keeps its status and the error shows Slurm's words.
        try fake("sbatch", "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\nexit 1")
        let refused = try picotron(["submit-slurm", "--inp_dir", runs.path])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssert(refused.output.contains("Invalid partition name specified"), refused.output)
        XCTAssertEqual(text("a/status.txt"), "init\n")
    }

    func testAGridLargerThanThePartitionIsNotSubmitted() throws {
        try makeRun("small", ["--dp", "2", "--tp", "2"])
        try makeRun("huge", ["--dp", "8", "--tp", "2"])
        try fakeSbatch()
        try fake("sinfo", "echo 'local* 1 8'")   // sinfo -h -o "%P %D %c": one node of 8 CPUs
        let r = try picotron(["submit-slurm", "--inp_dir", runs.path])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("partition local: 1 node × 8 CPUs"), r.output)
        XCTAssert(r.output.contains("huge: error: dp 8 × pp 1 × cp 1 × tp 2 = 16 tasks at 8 per node need 2 nodes, "
                                    + "but partition local has 1 (8 CPUs)"), r.output)
        XCTAssert(r.output.contains("small: 4 tasks on 1 node"), r.output)
        XCTAssertEqual(text("huge/status.txt"), "init\n")
        XCTAssertEqual(text("small/status.txt"), "pending\n")

        let cpus = try picotron(["submit-slurm", "--inp_dir", runs.path, "--only", "init", "--cpus-per-task", "4",
                                 "--tasks-per-node", "4"])
        XCTAssert(cpus.output.contains("4 tasks per node × 4 CPUs per task need 16 CPUs on a node, but partition local's "
                                       + "nodes have 8"), cpus.output)
    }

    func testExtractMetricsWritesEachRunsCSVAndTheGlobalOne() throws {
        try makeRun("dp2", ["--dp", "2", "--mbs", "2"])      // global batch 4 = mbs 2 × dp 2
        try makeRun("waiting", ["--tp", "2"])
        try Data("completed\n".utf8).write(to: runs.appendingPathComponent("dp2/status.txt"))
        try Data("running\n".utf8).write(to: runs.appendingPathComponent("waiting/status.txt"))
        // Three steps as train writes them; the first is left out of the means: (200 + 400) / 2 = 300 tokens/s.
        func line(_ step: Int, _ loss: Double, _ tps: Double, _ mfu: Double, _ mb: Int) -> String {
            #"{"grad_norm":1.5,"loss":\#(loss),"lr":0.001,"memory_bytes":\#(mb * 1_048_576),"mfu":\#(mfu),"seconds":0.5,"#
                + #""step":\#(step),"tokens_per_second":\#(tps),"tokens_seen":\#(128 * step)}"#
        }
        let lines = [line(1, 5.5, 100, 0.1, 1), line(2, 5.0, 200, 0.2, 3), line(3, 4.5, 400, 0.4, 2)]
        try Data((lines.joined(separator: "\n") + "\n{\"step\":4,\"lo").utf8)   // and a line cut by a crash
            .write(to: runs.appendingPathComponent("dp2/metrics.jsonl"))

        let r = try picotron(["extract-metrics", "--inp_dir", runs.path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("dp2: completed, 3 steps, 300.0 tokens/s, MFU 30.00%"), r.output)
        XCTAssert(r.output.contains("(1 unreadable lines skipped)"), r.output)
        XCTAssert(r.output.contains("waiting: running, no metrics.jsonl yet"), r.output)
        XCTAssertEqual(text("global_metrics.csv"), """
            run,status,dp,tp,pp,cp,ranks,micro_batch_size,grad_acc_steps,seq_len,global_batch_size,steps,last_loss,\
            tokens_per_second,tokens_per_second_per_rank,mfu_percent,memory_mb
            dp2,completed,2,1,1,1,2,2,1,32,4,3,4.5000,300.0,150.0,30.00,3.0
            waiting,running,1,2,1,1,2,1,1,32,1,,,,,,

            """)
        XCTAssertEqual(text("dp2/metrics.csv"), """
            step,loss,lr,grad_norm,tokens_per_second,tokens_seen,mfu,memory_bytes,seconds
            1,5.5,0.001,1.5,100.0,128,0.1,1048576,0.5
            2,5.0,0.001,1.5,200.0,256,0.2,3145728,0.5
            3,4.5,0.001,1.5,400.0,384,0.4,2097152,0.5

            """)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs.appendingPathComponent("waiting/metrics.csv").path))
    }
}
