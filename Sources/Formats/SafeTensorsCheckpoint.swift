// SafeTensorsCheckpoint.swift: a model directory, one safetensors file or a sharded index of them.
import Foundation

/// A model directory as `save_pretrained` writes it: one `model.safetensors`, or, for large models,
/// `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`) and its shards.
/// Either way the same `names` / `info` / `floats` / `int64s` API, so the model loader never cares.
public struct SafeTensorsCheckpoint: Sendable {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    public let directory: URL
    /// The opened files: one, or every shard listed by the index (each opened once, memory-mapped).
    public let files: [SafeTensorsFile]
    /// The file's `__metadata__`, or the index's `metadata` (numbers such as `total_size` as text).
    public let metadata: [String: String]
    /// Tensor names in sorted order.
    public let names: [String]
    private let fileOf: [String: Int]

    public init(directory: URL) throws {
        self.directory = directory
        let single = directory.appendingPathComponent(Self.singleFileName)
        let index = directory.appendingPathComponent(Self.indexFileName)
        if FileManager.default.fileExists(atPath: single.path) {
            let file = try SafeTensorsFile(contentsOf: single)
            (files, metadata, names) = ([file], file.metadata, file.names)
            fileOf = Dictionary(uniqueKeysWithValues: file.names.map { ($0, 0) })
            return
        }
        guard FileManager.default.fileExists(atPath: index.path) else {
            throw ModelFileError(.io, file: directory.path,
                                 problem: "no \(Self.singleFileName) or \(Self.indexFileName) in this directory",
                                 fix: "Point to a directory written by save_pretrained or by picotron")
        }
        let (weightMap, meta) = try Self.readIndex(index)
        var files: [SafeTensorsFile] = []
        var fileNumber: [String: Int] = [:]
        var fileOf: [String: Int] = [:]
        for (tensor, shard) in weightMap.sorted(by: { $0.key < $1.key }) {
            if fileNumber[shard] == nil {
                let url = directory.appendingPathComponent(shard)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw ModelFileError(.io, file: index.path,
                                         problem: "shard \(quoted(shard)) (holding \(quoted(tensor))) is missing",
                                         fix: "Download every shard the index lists into the same directory")
                }
                fileNumber[shard] = files.count
                files.append(try SafeTensorsFile(contentsOf: url))
            }
            guard let n = fileNumber[shard], files[n].contains(tensor) else {
                throw ModelFileError(.malformed, file: index.path,
                                     problem: "the index puts \(quoted(tensor)) in shard \(quoted(shard)), "
                                         + "which does not hold it", fix: "The index and its shards do not match")
            }
            fileOf[tensor] = n
        }
        (self.files, self.metadata, self.fileOf, self.names) = (files, meta, fileOf, fileOf.keys.sorted())
    }

    public func info(_ name: String) throws -> (dtype: SafeTensorsDType, shape: [Int]) {
        try file(holding: name).info(name)
    }

    public func floats(_ name: String) throws -> [Float] { try file(holding: name).floats(name) }

    public func int64s(_ name: String) throws -> [Int64] { try file(holding: name).int64s(name) }

    public func contains(_ name: String) -> Bool { fileOf[name] != nil }

    /// The file that holds `name`, or an error listing the nearest names of the whole checkpoint.
    public func file(holding name: String) throws -> SafeTensorsFile {
        guard let n = fileOf[name] else {
            throw ModelFileError(.missingTensor, file: directory.path,
                                 problem: "no tensor named \(quoted(name)) among the \(names.count) of this checkpoint",
                                 fix: nearestNames(to: name, in: names))
        }
        return files[n]
    }

    /// Reads the index: the tensor → shard map (shard names checked to stay inside the directory).
    private static func readIndex(_ url: URL) throws -> (weightMap: [String: String], metadata: [String: String]) {
        func bad(_ problem: String) -> ModelFileError { ModelFileError(.malformed, file: url.path, problem: problem) }
        guard let data = try? Data(contentsOf: url) else {
            throw ModelFileError(.io, file: url.path, problem: "cannot read it")
        }
        guard let json = JSONValue.parse(data) else { throw bad("not valid JSON") }
        guard let top = json.objectValue else { throw bad("the index is \(json.summary), not a JSON object") }
        guard let mapValue = top["weight_map"] else { throw bad("the index has no \"weight_map\"") }
        guard let map = mapValue.objectValue else {
            throw bad("\"weight_map\" is \(mapValue.summary), not an object of tensor name → shard file")
        }
        var weightMap: [String: String] = [:]
        for (tensor, value) in map {
            guard let shard = value.stringValue else {
                throw bad("weight_map entry \(quoted(tensor)) is \(value.summary), not a shard file name")
            }
            // A shard is a plain file name: "../" or "/" would let a downloaded index read any file on disk.
            guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), shard != ".", shard != ".." else {
                throw ModelFileError(.malformed, file: url.path,
                                     problem: "weight_map entry \(quoted(tensor)) names shard \(quoted(shard)), "
                                         + "which is not a plain file name in the model directory",
                                     fix: "Shard names must not contain \"/\" or be \"..\"")
            }
            weightMap[tensor] = shard
        }
        let metadata = (top["metadata"]?.objectValue ?? [:]).compactMapValues(\.scalarText)
        return (weightMap, metadata)
    }
}
