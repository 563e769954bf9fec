// Checkpoint+Stream.swift: writing and reading a checkpoint one parameter at a time.
//
// A checkpoint holds the whole model, whatever the layout that trained it. Assembling all of it in
// one process before writing would need the whole model's weights and both AdamW moments at once,
// 12 bytes per parameter on top of that process's own training state (for a 1.7B-parameter model,
// 20 GB), and every rank of a sharded run would need it to resume. So a save streams: the ranks
// assemble one parameter part at a time and the main rank writes it to its place in the files; a
// load maps the files and reads only the parameters a rank holds.

import Formats
import Foundation
import Llama
import TensorCore

/// One part of a parameter's saved state.
public enum CheckpointPart: Int, Sendable, CaseIterable {
    case weights, expAvg, expAvgSq

    /// This part of a parameter with `values` and AdamW `state`.
    public func of(_ values: [Float], _ state: AdamW.State) -> [Float] {
        switch self {
        case .weights: return values
        case .expAvg: return state.expAvg
        case .expAvgSq: return state.expAvgSq
        }
    }
}

extension CheckpointContents {
    /// Hands every part of every parameter to `write`, in model order (contents that are whole).
    public func write(to write: CheckpointSink) throws {
        for (p, s) in zip(parameters, optimizer) {
            for part in CheckpointPart.allCases { try write(p.name, part, part.of(p.values, s), s.step) }
        }
    }
}

/// Takes one whole part of a parameter as the ranks assemble a checkpoint: its name, which part,
/// its values and its AdamW step count.
public typealias CheckpointSink = (_ name: String, _ part: CheckpointPart, _ values: [Float], _ step: Int) throws -> Void

/// Writes a checkpoint directory `step-NNNNNN` one parameter part at a time, under a temporary name
/// renamed when complete (an unfinished writer leaves nothing behind). Refuses non-finite values:
/// a diverged model saved as a checkpoint would be picked up by the next "resume from latest".
public final class CheckpointWriter {
    public let directory: URL
    private let temporary: URL
    private let weights: SafeTensorsStreamWriter
    private let moments: SafeTensorsStreamWriter
    private let names: [String]
    private var steps: [String: Int] = [:]
    private var finished = false

    /// Starts `saveDir/step-NNNNNN` for parameters of these names and whole shapes, in model order.
    public init(saveDir: URL, step: Int, config: LlamaConfig, layout: [(name: String, shape: [Int])]) throws {
        let fm = FileManager.default
        directory = saveDir.appendingPathComponent(Checkpoint.directoryName(step: step))
        guard !fm.fileExists(atPath: directory.path) else {
            throw TrainingError.checkpoint("\(directory.path) already exists and is kept as it is; "
                                           + "choose another checkpoint.save_dir or remove it")
        }
        // The host and process in the name tell a later run which unfinished folders are stale.
        temporary = saveDir.appendingPathComponent(".\(directory.lastPathComponent).\(Checkpoint.temporaryTag).tmp")
        names = layout.map(\.name)
        do {
            try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
            try config.save(to: temporary)
            weights = try SafeTensorsStreamWriter(url: temporary.appendingPathComponent(SafeTensorsCheckpoint.singleFileName),
                                                  layout: layout, metadata: ["format": "pt"])
            moments = try SafeTensorsStreamWriter(url: temporary.appendingPathComponent("optimizer.safetensors"),
                                                  layout: layout.flatMap { [("exp_avg." + $0.name, $0.shape),
                                                                            ("exp_avg_sq." + $0.name, $0.shape)] })
        } catch {
            try? fm.removeItem(at: temporary)
            throw Self.failure(error, directory)
        }
    }

    deinit { if !finished { try? FileManager.default.removeItem(at: temporary) } }

    /// Writes one part of parameter `name` (whole, all its values); `step` is its AdamW step count.
    public func write(_ name: String, _ part: CheckpointPart, _ values: [Float], step: Int) throws {
        if let bad = Checkpoint.problem(in: values, part: part, of: name) {
            throw TrainingError.checkpoint("not saving \(directory.lastPathComponent): \(bad); the run has diverged, and "
                                           + "the checkpoints already saved are kept as they are")
        }
        do {
            switch part {
            case .weights: try weights.write(name, values)
            case .expAvg: try moments.write("exp_avg." + name, values)
            case .expAvgSq: try moments.write("exp_avg_sq." + name, values)
            }
        } catch {
            throw Self.failure(error, directory)
        }
        steps[name] = step
    }

    /// Writes the trainer state and renames the finished directory into place.
    @discardableResult
    public func finish(trainer: TrainerState) throws -> URL {
        do {
            try weights.finish()
            try moments.finish()
            var trainer = trainer
            trainer.optimizerSteps = names.map { steps[$0] ?? 0 }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(trainer).write(to: temporary.appendingPathComponent("trainer_state.json"), options: .atomic)
            try FileManager.default.moveItem(at: temporary, to: directory)
        } catch {
            throw Self.failure(error, directory)
        }
        finished = true
        return directory
    }

    private static func failure(_ error: Error, _ directory: URL) -> TrainingError {
        TrainingError.checkpoint("could not write \(directory.path) (\(OutputFile.describe(error))); nothing was "
                                 + "left half-written. Free disk space or fix the folder's permissions, or "
                                 + "choose another checkpoint.save_dir (--save-dir)")
    }
}

/// A checkpoint opened for reading one parameter at a time (the files are memory-mapped: only
/// what is read is paged in). Checked on opening: the architecture, the trainer state, and that the
/// optimizer state matches the parameters.
public struct CheckpointReader {
    public let directory: URL
    public let config: LlamaConfig
    public let trainer: TrainerState
    private let weights: SafeTensorsCheckpoint
    private let moments: SafeTensorsFile
    private let steps: [String: Int]

    /// Opens the checkpoint in `directory` of a model with architecture `config` whose parameters
    /// are `names` (Hugging Face names, in `namedParameters` order: the same under any layout).
    public init(directory: URL, config: LlamaConfig, names: [String]) throws {
        self.directory = directory
        self.config = try LlamaConfig.load(from: directory.appendingPathComponent("config.json"))
        if let difference = Checkpoint.describeDifference(self.config, config) {
            throw TrainingError.checkpoint("\(directory.path) is from a different model (\(difference)); "
                                           + "resume with the model it was trained with, or start without load_path")
        }
        weights = try SafeTensorsCheckpoint(directory: directory)
        let data: Data
        do { data = try Data(contentsOf: directory.appendingPathComponent("trainer_state.json")) } catch {
            throw TrainingError.checkpoint("\(directory.path) has no readable trainer_state.json: it is not a training checkpoint")
        }
        do { trainer = try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw TrainingError.checkpoint("\(directory.path)/trainer_state.json is malformed: \(error)")
        }
        try trainer.check(savedIn: directory)
        guard trainer.optimizerSteps.count == names.count else {
            throw TrainingError.checkpoint("\(directory.path): optimizer state for \(trainer.optimizerSteps.count) "
                                           + "parameters, the model has \(names.count)")
        }
        steps = Dictionary(zip(names, trainer.optimizerSteps), uniquingKeysWith: { a, _ in a })
        moments = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("optimizer.safetensors"))
        // Every rank checks every parameter, one at a time (each installs only its own later), so the
        // ranks of a run refuse a damaged checkpoint together instead of some waiting for the others.
        for name in names { _ = try parameter(name) }
    }

    /// Puts the checkpoint into `parameters` (this rank's, in its optimizer's order) and their AdamW
    /// state into `optimizer`; `slice` takes this rank's part of a whole tensor (default: all of it).
    public func install(into parameters: [(String, Tensor)], optimizer: AdamW,
                        slice: (_ name: String, _ whole: [Float]) -> [Float] = { $1 }) throws {
        var states = [AdamW.State]()
        for (name, p) in parameters {
            let saved = try parameter(name)
            let values = slice(name, saved.values)
            guard values.count == p.count else {
                throw TrainingError.checkpoint("the checkpoint's \(name) (\(saved.shape)) does not fit the model's "
                                               + "\(name) (\(p.shape)): its config.json and weights disagree")
            }
            p.data = values
            states.append(AdamW.State(step: saved.state.step, expAvg: slice(name, saved.state.expAvg),
                                      expAvgSq: slice(name, saved.state.expAvgSq)))
        }
        try optimizer.restore(states)
    }

    /// Parameter `name` in full: its shape, values and AdamW state, checked.
    public func parameter(_ name: String) throws -> (shape: [Int], values: [Float], state: AdamW.State) {
        guard let step = steps[name] else { throw TrainingError.checkpoint("the checkpoint has no \(name)") }
        let (shape, values) = (try weights.info(name).shape, try weights.floats(name))
        let (m, v) = (try moments.floats("exp_avg." + name), try moments.floats("exp_avg_sq." + name))
        guard m.count == values.count, v.count == values.count else {
            throw TrainingError.checkpoint("\(directory.path): optimizer state of \(name) has \(m.count) values, "
                                           + "the parameter \(values.count)")
        }
        let state = AdamW.State(step: step, expAvg: m, expAvgSq: v)
        for part in CheckpointPart.allCases {
            if let bad = Checkpoint.problem(in: part.of(values, state), part: part, of: name) {
                throw TrainingError.checkpoint("\(directory.path) cannot be resumed: \(bad); resume from an earlier "
                                               + "checkpoint, or start without load_path")
            }
        }
        return (shape, values, state)
    }
}
