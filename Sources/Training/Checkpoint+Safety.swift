// Checkpoint+Safety.swift: what keeps checkpoints trustworthy when things go wrong.
//
// - Before step 1: the save folder is writable and has room for a checkpoint (its size is known
//   from the model: weights and AdamW's two moments, float32), so a run never learns at its last
//   step that its work cannot be kept.
// - Unfinished saves (a process killed mid-save) leave `.step-NNNNNN.<host>.<pid>.tmp` folders; a
//   later run removes those whose process is gone.
// - Never written: weights or moments that are NaN or infinite.
// - Never believed: a trainer_state.json whose step disagrees with its folder's name or its loss
//   history, or whose numbers are negative.
import Formats
import Foundation
import Llama

extension Checkpoint {
    /// `<host>.<pid>`: names a save in progress, so only its own process's leftovers are ever in use.
    static var temporaryTag: String { "\(hostName).\(getpid())" }

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        let name = String(cString: buffer).replacingOccurrences(of: ".", with: "_")
        return name.isEmpty ? "localhost" : name
    }

    /// Bytes a checkpoint of a model with `parameters` parameters takes on disk: the weights and the
    /// two AdamW moments in float32, plus headers, config and trainer state (a generous 1 MB).
    public static func estimatedBytes(parameters: Int) -> Int { 3 * 4 * parameters + (1 << 20) }

    /// Removes the temporary folders of saves that were interrupted (their process is gone, or they
    /// carry the older `<uuid>` tag). Returns their names.
    @discardableResult
    public static func removeStaleTemporaries(in saveDir: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: saveDir.path)) ?? []
        var removed: [String] = []
        for name in names where name.hasPrefix(".step-") && name.hasSuffix(".tmp") {
            let parts = name.dropFirst().dropLast(4).split(separator: ".")   // step-NNNNNN, host, pid | uuid
            var stale = parts.count == 2 && UUID(uuidString: String(parts[1])) != nil
            if parts.count == 3, String(parts[1]) == hostName, let pid = Int32(parts[2]) {
                stale = pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH
            }
            if stale, (try? FileManager.default.removeItem(at: saveDir.appendingPathComponent(name))) != nil {
                removed.append(name)
            }
        }
        return removed
    }

    /// Checks, before training, that `saveDir` can take `saves` checkpoints of `bytes` each. Throws
    /// when not even one fits or the folder cannot be written; returns a warning when only some fit.
    public static func checkRoom(in saveDir: URL, bytes: Int, saves: Int) throws -> String? {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: saveDir.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw TrainingError.checkpoint("\(saveDir.path) is a file, not a folder, so no checkpoint can be saved "
                                           + "there; choose another checkpoint.save_dir (--save-dir) or --out-dir")
        }
        do { try fm.createDirectory(at: saveDir, withIntermediateDirectories: true) } catch {
            throw TrainingError.checkpoint("cannot create the checkpoint folder \(saveDir.path) "
                                           + "(\(OutputFile.describe(error))); choose another --out-dir or --save-dir")
        }
        let probe = saveDir.appendingPathComponent(".write-test.\(temporaryTag)")
        let fd = open(probe.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw TrainingError.checkpoint("cannot write checkpoints into \(saveDir.path) "
                                           + "(\(String(cString: strerror(errno)))); make it writable "
                                           + "(chmod u+w) or choose another checkpoint.save_dir (--save-dir)")
        }
        close(fd)
        unlink(probe.path)
        var info = statvfs()
        guard statvfs(saveDir.path, &info) == 0 else { return nil }
        let free = Int(clamping: UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize)).partialValue)
        func mb(_ b: Int) -> String { String(format: "%.1f MB", Double(b) / 1_048_576) }
        if free < bytes {
            throw TrainingError.checkpoint("\(saveDir.path) has \(mb(free)) free, but a checkpoint of this model takes "
                                           + "about \(mb(bytes)) (weights and AdamW's two moments, float32); free space "
                                           + "or choose another checkpoint.save_dir (--save-dir)")
        }
        if saves > 1, free / saves < bytes {
            return "warning: \(saveDir.path) has \(mb(free)) free: room for \(free / bytes) of the run's \(saves) "
                + "checkpoints of \(mb(bytes)) each; a save that does not fit is skipped with a message"
        }
        return nil
    }
}

extension CheckpointContents {
    /// The first weight or AdamW moment that is NaN or infinite, described, or nil.
    func firstNonFinite() -> String? {
        for (p, s) in zip(parameters, optimizer) {
            for part in CheckpointPart.allCases {
                if let bad = Checkpoint.problem(in: part.of(p.values, s), part: part, of: p.name) { return bad }
            }
        }
        return nil
    }
}

extension Checkpoint {
    /// What makes `values` unfit to save or resume (a value that is not finite, a negative mean of
    /// squares), or nil.
    static func problem(in values: [Float], part: CheckpointPart, of name: String) -> String? {
        let what = ["", "AdamW's exp_avg of ", "AdamW's exp_avg_sq of "][part.rawValue]
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            return "\(what)\(name) holds \(describeValue(values[i])) at index \(i)"
        }
        if part == .expAvgSq, let i = values.firstIndex(where: { $0 < 0 }) {
            return "AdamW's exp_avg_sq of \(name) holds \(values[i]) at index \(i) (a mean of squares is never negative)"
        }
        return nil
    }
}

extension TrainerState {
    /// Throws when the state cannot be what a run of this project saved in `directory`.
    func check(savedIn directory: URL) throws {
        func damaged(_ what: String) -> TrainingError {
            TrainingError.checkpoint("\(directory.path)/trainer_state.json \(what): the checkpoint is damaged or was "
                                     + "edited; resume from another checkpoint, or start without load_path")
        }
        guard step >= 0, tokensSeen >= 0 else { throw damaged("says step \(step), tokens seen \(tokensSeen)") }
        let name = directory.lastPathComponent
        if name.hasPrefix("step-"), let folderStep = Int(name.dropFirst(5)), folderStep != step {
            throw damaged("says step \(step), but its folder \(name) is step \(folderStep)")
        }
        guard losses.count == step else {
            throw damaged("says step \(step), but its loss history has \(losses.count) steps")
        }
        if let i = losses.firstIndex(where: { !$0.isFinite }) { throw damaged("has loss \(describeValue(losses[i])) at step \(i + 1)") }
        if let bad = optimizerSteps.first(where: { $0 < 0 || $0 > step }) {
            throw damaged("counts \(bad) AdamW steps for a parameter after \(step) training steps")
        }
    }
}

/// A value as a message shows it: "NaN", "+infinity", "-infinity", or the number.
public func describeValue(_ x: Float) -> String {
    x.isNaN ? "NaN" : x.isInfinite ? (x > 0 ? "+infinity" : "-infinity") : "\(x)"
}
