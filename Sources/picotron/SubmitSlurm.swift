import ArgumentParser
import Foundation
import Training

/// `picotron submit-slurm`: huggingface/picotron's submit_slurm_jobs.py. One Slurm job per run folder below
/// --inp_dir, sized from the run's grid, its status kept in status.txt (see RunFolder.swift, SlurmJob.swift).
struct SubmitSlurm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit-slurm",
        abstract: "Submit one Slurm job per config.json below a folder, and keep each run's status.txt.",
        discussion: """
            Every folder below --inp_dir with a picotron config.json is a run (picotron create-config writes \
            them). For each run whose status is in --only, it writes <run>/job.slurm (dp × pp × cp × tp tasks, \
            --tasks-per-node on each node, log in <run>/log_<job id>.out) and submits it with sbatch. The job \
            runs `picotron train --config <run>/config.json --out-dir <run>`; the status goes init → pending → \
            running → completed, fail, oom or timeout. A run submitted again resumes from its latest checkpoint. \
            Environment variables for MPI (OMPI_*, PMIX_*) and picotron (PICOTRON_*) are written into the script; \
            add others with --env. No cluster at hand? scripts/slurm-local.sh starts a one-node one here.
            """)

    @Option(name: [.customLong("inp_dir"), .customLong("inp-dir")],
            help: "The folder holding the runs (searched recursively).")
    var inpDir: String

    @Option(help: ArgumentHelp("Submit only the runs whose status.txt says one of these, comma-separated "
                               + "(\(RunStatus.names)), or all.", valueName: "statuses"))
    var only = "init"

    @Option(help: "How the job starts its ranks: srun (srun --mpi=pmix) or mpirun (OpenMPI's, inside the allocation).")
    var launcher = SlurmLauncher.srun

    @Option(parsing: .unconditional, help: ArgumentHelp("Tasks (ranks) per node; the nodes follow. Default: the "
                                                        + "partition's CPUs per node ÷ --cpus-per-task (8 without sinfo)."))
    var tasksPerNode: Int?

    @Option(parsing: .unconditional, help: "CPUs per task; each rank runs this many OpenBLAS threads.")
    var cpusPerTask = 1

    @Option(help: "The job's time limit, in Slurm's format (minutes, HH:MM:SS, D-HH:MM).")
    var time = "01:00:00"

    @Option(help: "The Slurm partition (default: the cluster's default).")
    var partition: String?

    @Option(help: "The Slurm quality of service, if your cluster wants one.")
    var qos: String?

    @Option(parsing: .unconditional, help: "Seconds before the time limit when every rank stops and saves (0: never).")
    var saveBeforeLimit = 120

    @Option(name: .customLong("env"), help: ArgumentHelp("NAME=VALUE exported in the job script (repeat for more).",
                                                         valueName: "NAME=VALUE"))
    var environment: [String] = []

    @Option(help: "The picotron executable the job runs (default: this one).")
    var picotron: String?

    @Flag(help: "Write the job scripts, submit nothing.")
    var dryRun = false

    @Option(name: .customLong("hf_token"), help: "Accepted as picotron's script takes it; not used (nothing is downloaded).")
    var hfToken: String?

    var statuses: Set<String> {
        only == "all" ? Set(RunStatus.allCases.map(\.rawValue)) : Set(only.split(separator: ",").map(String.init))
    }

    func validate() throws {
        let unknown = statuses.filter { RunStatus(rawValue: $0) == nil }.sorted()
        guard unknown.isEmpty else {
            throw ValidationError("--only \(only): \(unknown.joined(separator: ", ")) is not a status; "
                                  + "use \(RunStatus.names) or all")
        }
        guard cpusPerTask >= 1, (tasksPerNode ?? 1) >= 1, saveBeforeLimit >= 0 else {
            throw ValidationError("--cpus-per-task \(cpusPerTask) and --tasks-per-node must be ≥ 1, --save-before-limit ≥ 0")
        }
        guard !time.isEmpty, time.allSatisfy({ $0.isNumber || $0 == ":" || $0 == "-" }) else {
            throw ValidationError("--time \(time): use minutes, HH:MM:SS or D-HH:MM:SS, e.g. --time 00:30:00")
        }
        for item in environment where !item.contains("=") || item.hasPrefix("=") {
            throw ValidationError("--env \(item): write NAME=VALUE, e.g. --env OMPI_MCA_btl=tcp,self")
        }
    }

    func run() throws {
        if hfToken != nil { print("note: --hf_token is not used: the jobs download nothing (architectures come from a built-in table)") }
        let runs = try RunFolder.find(below: inpDir)
        var sbatch = ""
        if !dryRun {
            guard let found = Shell.which("sbatch") else {
                throw RunError("sbatch is not on PATH, so there is no Slurm to submit to. On a cluster, run this on a login "
                               + "node (or load Slurm: `module load slurm`); to try it on this machine, "
                               + "scripts/slurm-local.sh starts a one-node cluster (Debian: apt-get install slurm-client for "
                               + "the commands alone). --dry-run writes the job scripts without submitting them.")
            }
            sbatch = found
        }
        let cluster = SlurmPartition.query(partition)
        if partition != nil, cluster == nil, Shell.which("sinfo") != nil {
            throw RunError("--partition \(partition!): sinfo does not list it; `sinfo -s` shows the partitions")
        }
        let perNode = tasksPerNode ?? cluster.map { max(1, $0.cpusPerNode / cpusPerTask) } ?? 8
        if let cluster {
            let nodes = "\(cluster.nodes) node\(cluster.nodes == 1 ? "" : "s")"
            print("partition \(cluster.name): \(nodes) × \(cluster.cpusPerNode) CPUs")
        }
        let exports = jobEnvironment
        var (submitted, skipped, failed) = (0, 0, 0)
        for run in runs {
            let status = run.status
            guard statuses.contains(status) else {
                print("\(run.name): skipped (status \(status); --only \(status) submits it)")
                skipped += 1
                continue
            }
            do {
                if !FileManager.default.fileExists(atPath: run.statusFile.path) { try run.setStatus(.initial) }
                let job = try job(for: run, tasksPerNode: perNode, cluster: cluster, environment: exports)
                try Data(job.script.utf8).write(to: run.jobScript)
                let nodes = "\(job.nodes) node\(job.nodes == 1 ? "" : "s")"
                let shape = "\(job.ranks) tasks on \(nodes) (\(job.tasksPerNode) per node), \(job.launcher.rawValue)"
                if dryRun {
                    print("\(run.name): \(shape): wrote \(run.jobScript.path) (dry run: not submitted)")
                } else {
                    let id = try submit(run, previous: status, sbatch: sbatch)
                    print("\(run.name): \(shape): submitted job \(id), status pending, log \(run.url.path)/log_\(id).out")
                }
                submitted += 1
            } catch {
                print("\(run.name): error: \(error)")
                failed += 1
            }
        }
        let verb = dryRun ? "wrote job scripts for" : "submitted"
        print("\(verb) \(submitted) of \(runs.count) run\(runs.count == 1 ? "" : "s")"
              + (skipped > 0 ? ", \(skipped) skipped by --only \(only)" : "") + (failed > 0 ? ", \(failed) failed" : ""))
        if failed > 0 { throw ExitCode(1) }
    }

    /// The job of one run, checked against the partition.
    func job(for run: RunFolder, tasksPerNode: Int, cluster: SlurmPartition?,
             environment: [(String, String)]) throws -> SlurmJob {
        let config = try PicotronConfig.load(from: run.configFile).config
        let d = config.distributed
        var job = SlurmJob(
            name: run.url.lastPathComponent, ranks: config.worldSize, tasksPerNode: tasksPerNode, cpusPerTask: cpusPerTask,
            time: time, partition: partition, qos: qos, stopBeforeLimit: saveBeforeLimit, launcher: launcher,
            picotron: picotron.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? Self.executable,
            run: run, saveDir: (config.trainOptions(runDir: run.url).saveDir ?? run.url).path,
            workDir: FileManager.default.currentDirectoryPath, environment: environment)
        job.tasksPerNode = min(tasksPerNode, job.ranks)
        guard let cluster else { return job }
        let grid = "dp \(d.dpSize) × pp \(d.ppSize) × cp \(d.cpSize) × tp \(d.tpSize) = \(job.ranks) tasks"
        let fix = "shrink the grid in \(run.configFile.path), lower --cpus-per-task or --tasks-per-node, or choose "
            + "another --partition"
        if job.tasksPerNode * cpusPerTask > cluster.cpusPerNode {
            let cpus = job.tasksPerNode * cpusPerTask
            throw RunError("\(job.tasksPerNode) tasks per node × \(cpusPerTask) CPUs per task need \(cpus) CPUs on a node"
                           + ", but partition \(cluster.name)'s nodes have \(cluster.cpusPerNode); \(fix)")
        }
        if job.nodes > cluster.nodes {
            throw RunError("\(grid) at \(job.tasksPerNode) per node need \(job.nodes) nodes, but partition "
                           + "\(cluster.name) has \(cluster.nodes) (\(cluster.nodes * cluster.cpusPerNode) CPUs); \(fix)")
        }
        return job
    }

    /// Submits the run's job script; status.txt says pending before sbatch runs (the job may start, and
    /// write running, before sbatch returns), and goes back to what it was when sbatch fails.
    func submit(_ run: RunFolder, previous: String, sbatch: String) throws -> Int {
        try run.setStatus(.pending)
        let (code, output) = try Shell.run(sbatch, [run.jobScript.path])
        let id = output.split(separator: "\n").compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.first
        guard code == 0, let id else {
            try? run.write(previous)
            throw RunError("sbatch \(run.jobScript.path) failed (exit \(code)): "
                           + output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return id
    }

    /// What the ranks need exported: MPI's and picotron's variables as set here, root's permission for
    /// OpenMPI, then --env.
    var jobEnvironment: [(String, String)] {
        var env = Shell.userEnvironment.filter { name, _ in
            ["OMPI_", "PMIX_", "PICOTRON_"].contains { name.hasPrefix($0) } || name == "OPENBLAS_NUM_THREADS"
        }
        if getuid() == 0 {   // OpenMPI refuses root unless told twice
            env["OMPI_ALLOW_RUN_AS_ROOT"] = env["OMPI_ALLOW_RUN_AS_ROOT"] ?? "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] ?? "1"
        }
        for item in environment {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            env[String(parts[0])] = String(parts[1])
        }
        return env.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// This executable's absolute path, so the job runs the same build.
    static var executable: String {
        (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath().path
    }
}

extension SlurmLauncher: ExpressibleByArgument {}
