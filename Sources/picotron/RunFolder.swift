// The runs below a folder, as huggingface/picotron's submit_slurm_jobs.py and extract_metrics.py see them:
// every folder holding a picotron config.json is one run, and its status.txt (one word) says where it is.
//
//   init ──sbatch──▶ pending ──job starts──▶ running ──▶ completed | fail | oom | timeout
//
// `picotron submit-slurm` writes init and pending; the job script writes the rest.
//
// ### References
// huggingface/picotron: submit_slurm_jobs.py (Status, Job), extract_metrics.py

import Foundation

/// Where a run is, as written in its status.txt.
enum RunStatus: String, CaseIterable {
    case initial = "init"          // found, never submitted
    case pending                   // submitted, waiting for nodes
    case running                   // the job script started
    case completed                 // picotron train exited with 0
    case fail                      // it exited with another status, or the job was cancelled
    case oom                       // out of memory: killed, or refused by picotron's memory estimate
    case timeout                   // stopped at the job's time limit

    static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// One run: a folder with a picotron config.json; its status.txt, job script and log sit beside it.
struct RunFolder {
    /// The folder, absolute.
    let url: URL
    /// Its path below the searched folder (`sweep/dp2_tp2`), or its own name when it is that folder.
    let name: String

    var configFile: URL { url.appendingPathComponent("config.json") }
    var statusFile: URL { url.appendingPathComponent("status.txt") }
    var jobScript: URL { url.appendingPathComponent("job.slurm") }
    var metricsFile: URL { url.appendingPathComponent("metrics.jsonl") }

    /// The word in status.txt; `init` when there is none yet.
    var status: String {
        guard let text = try? String(contentsOf: statusFile, encoding: .utf8) else { return RunStatus.initial.rawValue }
        let word = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return word.isEmpty ? RunStatus.initial.rawValue : word
    }

    /// Writes status.txt whole (a temporary file renamed over it): the job script may read it at any time.
    func setStatus(_ status: RunStatus) throws {
        try write(status.rawValue)
    }

    /// Writes `word` to status.txt through a temporary file renamed over it.
    func write(_ word: String) throws {
        let tmp = url.appendingPathComponent(".status.txt.tmp")
        try Data((word + "\n").utf8).write(to: tmp)
        guard rename(tmp.path, statusFile.path) == 0 else {
            throw RunError("cannot write \(statusFile.path): \(String(cString: strerror(errno)))")
        }
    }

    /// Every run below `dir` (itself included), sorted by name. A config.json that is a Hugging Face model's
    /// (`model_type`, as in every checkpoint folder) is not a run. Throws when `dir` is missing or holds no run.
    static func find(below dir: String) throws -> [RunFolder] {
        let root = URL(fileURLWithPath: dir).standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RunError("--inp_dir \(dir): no such folder. Create runs in it with `picotron create-config --out_dir "
                           + "\(dir) --exp_name NAME`")
        }
        var configs = [root.appendingPathComponent("config.json")]
        let walk = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles])
        if let walk {
            for case let file as URL in walk where file.lastPathComponent == "config.json" { configs.append(file) }
        }
        var seen = Set<String>()
        let runs = configs.compactMap { file -> RunFolder? in
            let folder = file.deletingLastPathComponent().standardizedFileURL
            guard seen.insert(folder.path).inserted, isPicotronConfig(file) else { return nil }
            let relative = folder.path.dropFirst(root.path.count).drop { $0 == "/" }
            return RunFolder(url: folder, name: relative.isEmpty ? folder.lastPathComponent : String(relative))
        }
        guard !runs.isEmpty else {
            throw RunError("no config.json below \(dir): each run is a folder with a picotron config.json. Write one "
                           + "with `picotron create-config --out_dir \(dir) --exp_name NAME --dp 2 --tp 2`")
        }
        return runs.sorted { $0.name < $1.name }
    }

    /// A JSON object that is not a Hugging Face model config (those have `model_type` at the top).
    static func isPicotronConfig(_ file: URL) -> Bool {
        guard let data = try? Data(contentsOf: file),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            // A file that is not JSON is still meant as a run: loading it reports the line and column.
            return FileManager.default.fileExists(atPath: file.path)
        }
        return object["model_type"] == nil && object["architectures"] == nil
    }
}
