// The job script `picotron submit-slurm` writes for one run, and what it asks Slurm for.
//
// One task per rank: dp × pp × cp × tp tasks, `tasksPerNode` of them on each node. The script keeps the
// run's status.txt current (running at its start; completed, fail, oom or timeout at its end, from the exit
// status and the log), resumes from the run's latest checkpoint when an earlier job left one, and asks for a
// checkpoint before the time limit (Slurm sends the script USR1; every rank stops after its step and saves).
//
// ### References
// huggingface/picotron: template/base_job.slurm (status updates in the job script itself)

import Foundation

/// How the ranks start: Slurm's own launcher with PMIx, or OpenMPI's mpirun inside the allocation.
enum SlurmLauncher: String, CaseIterable {
    case srun, mpirun

    /// The command line that starts every rank of the job.
    var command: String {
        switch self {
        case .srun: return "srun --mpi=pmix --kill-on-bad-exit=1"
        // mpirun takes the hosts and slots from the allocation; --oversubscribe lets a node run more ranks
        // than it has cores (a node that claims more CPUs than it has, as scripts/slurm-local.sh's).
        case .mpirun: return "mpirun -np \"$SLURM_NTASKS\" --oversubscribe"
        }
    }
}

/// One run's job: its shape and the script that runs it.
struct SlurmJob {
    var name: String
    var ranks: Int
    var tasksPerNode: Int
    var cpusPerTask: Int
    var time: String
    var partition: String?
    var qos: String?
    var stopBeforeLimit: Int
    var launcher: SlurmLauncher
    /// Absolute paths: the picotron executable, the run folder, its checkpoint folder, where the job starts.
    var picotron: String
    var run: RunFolder
    var saveDir: String
    var workDir: String
    /// `export` lines for the environment the ranks need (name, value), in order.
    var environment: [(String, String)]

    var nodes: Int { (ranks + tasksPerNode - 1) / tasksPerNode }

    /// Single quotes for the shell: a path with spaces or `$` reaches the command as it is.
    static func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    var script: String {
        let q = Self.quoted
        let log = run.url.appendingPathComponent("log_%j.out").path
        var header = [
            "--job-name=\(name)", "--nodes=\(nodes)", "--ntasks=\(ranks)", "--ntasks-per-node=\(min(ranks, tasksPerNode))",
            "--cpus-per-task=\(cpusPerTask)", "--time=\(time)", "--output=\(log)", "--error=\(log)", "--chdir=\(workDir)",
        ]
        if stopBeforeLimit > 0 { header.append("--signal=B:USR1@\(stopBeforeLimit)") }
        if let partition { header.append("--partition=\(partition)") }
        if let qos { header.append("--qos=\(qos)") }
        let exports = environment.map { "export \($0.0)=\(q($0.1))" }
        let train = "\(q(picotron)) train --config \(q(run.configFile.path)) "
            + "--out-dir \"$run\" --metrics-out \"$run/metrics.jsonl\" \"${resume[@]}\""
        return """
            #!/bin/bash
            # Written by `picotron submit-slurm` for the run in \(run.url.path):
            # \(ranks) ranks (dp × pp × cp × tp) as \(ranks) tasks on \(nodes) node(s), started by \(launcher.rawValue).
            # Submit it again with `picotron submit-slurm --inp_dir DIR --only STATUS`, or with `sbatch` on this file.
            \(header.map { "#SBATCH " + $0 }.joined(separator: "\n"))

            run=\(q(run.url.path))
            save_dir=\(q(saveDir))
            set_status() {   # status.txt is replaced whole: a reader never sees half a word
              echo "$1" > "$run/.status.txt.tmp" && mv -f "$run/.status.txt.tmp" "$run/status.txt"
              echo "status: $1"
            }
            set_status running
            echo "job $SLURM_JOB_ID: $SLURM_NTASKS tasks on $SLURM_JOB_NUM_NODES node(s) ($SLURM_JOB_NODELIST), $(date)"

            # The environment the ranks need, as it was where the job was submitted (sbatch passes the rest on).
            \(exports.joined(separator: "\n"))
            # One OpenBLAS thread per CPU Slurm gave the task, unless set above.
            export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

            # An earlier job of this run left a checkpoint: go on from the latest. Without one, the run starts
            # again, and the earlier job's metrics are kept aside (a fresh run refuses a metrics file with lines).
            resume=()
            if compgen -G "$save_dir/step-*" > /dev/null; then
              resume=(--load-path "$save_dir")
              echo "resuming from the latest checkpoint in $save_dir"
            elif [ -s "$run/metrics.jsonl" ]; then
              mv "$run/metrics.jsonl" "$run/metrics-before-$SLURM_JOB_ID.jsonl"
            fi

            # USR1 comes \(stopBeforeLimit) s before the time limit: pass it to the ranks, which stop after their step and
            # save a checkpoint. TERM (scancel, or the limit itself) is passed on too.
            near_limit=0
            trap 'near_limit=1; echo "time limit near: the ranks stop and save"; kill -USR1 "$launcher" 2>/dev/null' USR1
            trap 'kill -TERM "$launcher" 2>/dev/null' TERM
            \(launcher.command) \(train) &
            launcher=$!
            wait "$launcher"; code=$?
            while kill -0 "$launcher" 2>/dev/null; do wait "$launcher"; code=$?; done   # a signal ends `wait` early

            log="$run/log_$SLURM_JOB_ID.out"
            if [ "$code" -eq 0 ]; then set_status completed
            elif [ "$near_limit" = 1 ] || grep -q "DUE TO TIME LIMIT" "$log" 2>/dev/null; then set_status timeout
            elif [ "$code" -eq 137 ] || grep -qiE "out of memory|oom.kill|but this machine has" "$log" 2>/dev/null; then
              set_status oom
            else set_status fail
            fi
            exit "$code"

            """
    }
}

/// What a Slurm partition offers, from `sinfo`: nil when sinfo is missing or says nothing.
struct SlurmPartition {
    var name: String
    var nodes: Int
    var cpusPerNode: Int

    /// The partition named, or the default one (`sinfo` marks it with `*`).
    static func query(_ partition: String?) -> SlurmPartition? {
        guard let sinfo = Shell.which("sinfo"),
              let (status, output) = try? Shell.run(sinfo, ["-h", "-o", "%P %D %c"]), status == 0 else { return nil }
        var found: SlurmPartition?
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, let nodes = Int(fields[1]),
                  let cpus = Int(fields[2].filter(\.isNumber)) else { continue }
            let isDefault = fields[0].hasSuffix("*")
            let name = fields[0].replacingOccurrences(of: "*", with: "")
            guard partition.map({ $0 == name }) ?? isDefault else { continue }
            // A partition may span several lines (nodes in different states or of different sizes).
            found = SlurmPartition(name: name, nodes: (found?.nodes ?? 0) + nodes,
                                   cpusPerNode: max(found?.cpusPerNode ?? 0, cpus))
        }
        return found
    }
}

/// Running the Slurm commands.
enum Shell {
    /// The executable `name` on PATH, as the shell would find it.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The environment as the user set it: without what `OpenBLASSetup` added when picotron started itself
    /// again (its marker names them). sbatch passes its environment to the job, and a compute node must
    /// choose its own OpenBLAS kernel.
    static var userEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        let marker = "PICOTRON_OPENBLAS_SETUP"
        for setting in (env[marker] ?? "").split(separator: " ") {
            env[String(setting.prefix { $0 != "=" })] = nil
        }
        env[marker] = nil
        return env
    }

    /// Runs `executable arguments` in the user's environment to the end: its exit status and its output
    /// (stdout and stderr).
    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = userEnvironment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
