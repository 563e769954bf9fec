// SafeTensors+Write.swift: writing safetensors files that `safetensors.torch.load_file` and
// `from_pretrained` read back, byte-compatible with the Rust library's own layout.
//
// Layout written: [N: u64 LE][header JSON, padded with spaces to a multiple of 8][data]
//   header = {"__metadata__": {...}, "<name>": {"dtype", "shape", "data_offsets"}, ...}, tensor names sorted,
//   data in the same order. The padding keeps the data buffer 8-byte aligned, which lets readers map
//   F32/I64 tensors in place.
//
// Why atomic: a checkpoint is written while a long run is going; a crash (or a full disk) mid-write must
// leave the previous good file untouched. So the bytes go to a temporary file in the same directory and
// only a complete, flushed file is renamed over the target (rename(2) is atomic within one file system).
// A name that is a symbolic link or a device is followed or written through, never replaced (OutputFile).
import Foundation

public enum SafeTensorsWriter {
    /// One tensor to write: its values are F32 or I64.
    public struct Tensor: Sendable {
        public enum Values: Sendable {
            case f32([Float])
            case i64([Int64])
        }

        public let name: String
        public let shape: [Int]
        public let values: Values

        public init(name: String, shape: [Int], values: Values) {
            (self.name, self.shape, self.values) = (name, shape, values)
        }

        var dtype: SafeTensorsDType {
            if case .f32 = values { return .f32 }
            return .i64
        }

        var count: Int {
            switch values {
            case .f32(let v): return v.count
            case .i64(let v): return v.count
            }
        }
    }

    /// Writes F32 tensors (weights, gradients, optimizer state).
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])],
                             metadata: [String: String]? = nil, to url: URL) throws {
        try write(tensors.map { Tensor(name: $0.name, shape: $0.shape, values: .f32($0.values)) },
                  metadata: metadata, to: url)
    }

    /// Writes I64 tensors (token batches: `input_ids`, `labels`).
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Int64])],
                             metadata: [String: String]? = nil, to url: URL) throws {
        try write(tensors.map { Tensor(name: $0.name, shape: $0.shape, values: .i64($0.values)) },
                  metadata: metadata, to: url)
    }

    /// Writes tensors of either dtype into one file, atomically: on any error the target is left as it was.
    public static func write(_ tensors: [Tensor], metadata: [String: String]? = nil, to url: URL) throws {
        let sorted = try validated(tensors, file: url.path)
        let header = headerBytes(sorted, metadata: metadata)
        // A regular file is replaced atomically; a link is followed, a device written through.
        try OutputFile.write(to: url) { handle in
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try handle.write(contentsOf: $0) }
            try handle.write(contentsOf: header)
            for t in sorted {
                switch t.values {
                #if _endian(big)
                case .f32(let v): try writeRaw(v.map(\.bitPattern.littleEndian), to: handle)
                case .i64(let v): try writeRaw(v.map(\.littleEndian), to: handle)
                #else
                case .f32(let v): try writeRaw(v, to: handle)
                case .i64(let v): try writeRaw(v, to: handle)
                #endif
                }
            }
        }
    }

    /// What the header says of one tensor.
    struct Entry {
        let name: String
        let dtype: SafeTensorsDType
        let shape: [Int]
        let count: Int
    }

    /// The header as written: 8-byte aligned, padded with spaces (as the Rust safetensors library does).
    static func headerBytes(_ sorted: [Tensor], metadata: [String: String]?) -> Data {
        headerBytes(entries: sorted.map { Entry(name: $0.name, dtype: $0.dtype, shape: $0.shape, count: $0.count) },
                    metadata: metadata)
    }

    static func headerBytes(entries sorted: [Entry], metadata: [String: String]?) -> Data {
        var parts: [String] = []
        if let metadata, !metadata.isEmpty {
            let items = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for t in sorted {
            let end = offset + t.count * t.dtype.size
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],"
                         + "\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var bytes = Array("{\(parts.joined(separator: ","))}".utf8)
        bytes += Array(repeating: UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8)
        return Data(bytes)
    }

    /// Checks what the caller hands in (a writer error is the caller's, not the file's) and sorts by name.
    private static func validated(_ tensors: [Tensor], file: String) throws -> [Tensor] {
        func bad(_ problem: String, _ fix: String? = nil) -> ModelFileError {
            ModelFileError(.invalidArgument, file: file, problem: problem, fix: fix)
        }
        var seen = Set<String>()
        for t in tensors {
            guard t.name != "__metadata__" else { throw bad("\"__metadata__\" is reserved and cannot name a tensor") }
            guard seen.insert(t.name).inserted else {
                throw bad("tensor \(quoted(t.name)) is given twice", "Give each tensor a unique name")
            }
            guard t.shape.allSatisfy({ $0 >= 0 }) else {
                throw bad("tensor \(quoted(t.name)) has shape \(t.shape) with a negative dimension")
            }
            let (count, overflow) = t.shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !overflow, count == t.count else {
                throw bad("tensor \(quoted(t.name)) has shape \(t.shape) (\(overflow ? "overflowing" : "\(count)") "
                          + "elements) but \(t.count) values", "Pass values.count == product of the shape")
            }
        }
        return tensors.sorted { $0.name < $1.name }
    }

    /// Writes the in-memory bytes of `values` without a copy (already little-endian: see the caller).
    private static func writeRaw<T>(_ values: [T], to handle: FileHandle) throws {
        try values.withUnsafeBytes { try handle.write(contentsOf: $0) }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped, everything else UTF-8.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
