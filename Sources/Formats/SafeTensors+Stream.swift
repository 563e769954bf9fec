// SafeTensors+Stream.swift: writing a safetensors file one tensor at a time, in any order.
//
// A checkpoint of a model sharded over many ranks is assembled one parameter at a time: holding
// every whole tensor at once would need the whole model (and its optimizer state) in one process.
// The header (names, shapes, offsets) depends only on the shapes, so it is written first; each
// tensor's values then go straight to their place in the file when they arrive. The bytes are those
// `SafeTensorsWriter.write` writes for the same tensors (sorted names, 8-byte aligned header).
// The file is always a new one: callers write under a temporary name and rename when complete.
import Foundation

public final class SafeTensorsStreamWriter {
    public let url: URL
    private let handle: FileHandle
    /// Where each tensor's bytes start in the file, and how many floats it has.
    private let places: [String: (offset: UInt64, count: Int)]
    private var missing: Set<String>

    /// Creates `url` (which must not exist) for F32 tensors of these names and shapes and writes its header.
    public init(url: URL, layout: [(name: String, shape: [Int])], metadata: [String: String]? = nil) throws {
        let entries = try layout.map { t -> SafeTensorsWriter.Entry in
            guard t.shape.allSatisfy({ $0 >= 0 }) else {
                throw ModelFileError(.invalidArgument, file: url.path, problem: "tensor \(quoted(t.name)) has shape "
                                     + "\(t.shape) with a negative dimension")
            }
            return SafeTensorsWriter.Entry(name: t.name, dtype: .f32, shape: t.shape, count: t.shape.reduce(1, *))
        }
        guard Set(entries.map(\.name)).count == entries.count, !entries.contains(where: { $0.name == "__metadata__" }) else {
            throw ModelFileError(.invalidArgument, file: url.path, problem: "the layout names a tensor twice or uses "
                                 + "\"__metadata__\"", fix: "Give each tensor a unique name")
        }
        let sorted = entries.sorted { $0.name < $1.name }
        let header = SafeTensorsWriter.headerBytes(entries: sorted, metadata: metadata)
        var places: [String: (UInt64, Int)] = [:]
        var offset = UInt64(8 + header.count)
        for e in sorted {
            places[e.name] = (offset, e.count)
            offset += UInt64(e.count * 4)
        }
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: url.path) else {
            throw ModelFileError(.io, file: url.path, problem: "cannot create it",
                                 fix: "Check that its folder exists and is writable")
        }
        (self.url, self.handle, self.places, missing) = (url, handle, places, Set(entries.map(\.name)))
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { try handle.write(contentsOf: $0) }
        try handle.write(contentsOf: header)
    }

    deinit { try? handle.close() }

    /// Writes the values of the tensor `name` of the layout, once.
    public func write(_ name: String, _ values: [Float]) throws {
        guard let place = places[name], missing.remove(name) != nil else {
            throw ModelFileError(.invalidArgument, file: url.path, problem: "tensor \(quoted(name)) is "
                                 + (places[name] == nil ? "not in the layout" : "written twice"))
        }
        guard values.count == place.count else {
            throw ModelFileError(.invalidArgument, file: url.path, problem: "tensor \(quoted(name)) has \(values.count) "
                                 + "values, its shape \(place.count)")
        }
        try handle.seek(toOffset: place.offset)
        #if _endian(big)
        try values.map(\.bitPattern.littleEndian).withUnsafeBytes { try handle.write(contentsOf: $0) }
        #else
        try values.withUnsafeBytes { try handle.write(contentsOf: $0) }
        #endif
    }

    /// Checks that every tensor was written, flushes the file to disk and closes it.
    public func finish() throws {
        guard missing.isEmpty else {
            throw ModelFileError(.invalidArgument, file: url.path, problem: "\(missing.count) tensors of the layout were "
                                 + "never written (\(missing.sorted().prefix(3).joined(separator: ", ")))")
        }
        try handle.synchronize()
        try handle.close()
    }
}
