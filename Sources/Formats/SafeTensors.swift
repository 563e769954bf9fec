// SafeTensors.swift: reading the safetensors format, the way Hugging Face stores weights.
//
// Layout of a file (https://github.com/huggingface/safetensors):
//   [ N: u64 little-endian ][ N bytes of JSON header ][ byte buffer ]
//   header = { "<name>": {"dtype": "F32", "shape": [3, 5], "data_offsets": [begin, end]}, ...,
//              "__metadata__": {"<key>": "<string>"} }        (metadata is optional)
//   offsets are relative to the start of the byte buffer; values are little-endian, row-major.
//
// Why so many checks: a checkpoint is input from the internet. Every length, offset and shape is
// validated once, at open, against the real file size, so that reading a tensor afterwards can
// neither crash nor allocate more than the file holds.
import Foundation

/// The element types of the safetensors format, spelled as in the header.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case i64 = "I64", u64 = "U64", f64 = "F64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .i64, .u64, .f64: return 8
        }
    }
}

/// One parsed `.safetensors` file. The file is memory-mapped; tensors are decoded on request.
public struct SafeTensorsFile: Sendable {
    /// Where one tensor lives. `range` is relative to the byte buffer (after the header).
    struct Entry: Sendable {
        let dtype: SafeTensorsDType
        let shape: [Int]
        let count: Int
        let range: Range<Int>
    }

    /// Headers larger than this are refused before any allocation (the Rust library's limit too).
    public static let maxHeaderBytes = 100_000_000

    public let url: URL
    /// Tensor names in sorted order.
    public let names: [String]
    /// The free-form `__metadata__` of the header (e.g. `{"format": "pt"}`).
    public var metadata: [String: String]
    private let data: Data
    private let bufferStart: Int
    private let entries: [String: Entry]

    public init(contentsOf url: URL) throws {
        let file = url.path
        func bad(_ problem: String, _ fix: String? = nil) -> ModelFileError { malformed(file, problem, fix) }
        guard FileManager.default.fileExists(atPath: file) else {
            throw ModelFileError(.io, file: file, problem: "file does not exist", fix: "Check the path")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw ModelFileError(.io, file: file, problem: "cannot read it (\(error.localizedDescription))")
        }
        guard data.count >= 8 else {
            throw bad("file is \(data.count) bytes, too short for the 8-byte header length",
                      "The file is truncated or is not a safetensors file")
        }
        let n = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n <= UInt64(Self.maxHeaderBytes) else {
            throw bad("header length \(n) bytes exceeds the \(Self.maxHeaderBytes / 1_000_000) MB limit",
                      "The file is corrupted or is not a safetensors file")
        }
        guard Int(n) <= data.count - 8 else {
            throw bad("header length \(n) bytes runs past the end of the file (\(data.count) bytes in all)",
                      "The file is truncated; download or write it again")
        }
        let headerEnd = 8 + Int(n)
        guard let json = JSONValue.parse(data.subdata(in: 8..<headerEnd)) else {
            throw bad("the \(n)-byte header is not valid JSON", "The file is corrupted or is not a safetensors file")
        }
        guard let header = json.objectValue else {
            throw bad("the header is \(json.summary), not a JSON object of tensors")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let bufferLength = data.count - headerEnd
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = try Self.parseMetadata(value, file: file)
            } else {
                entries[name] = try Self.parseEntry(name, value, bufferLength: bufferLength, file: file)
            }
        }
        try Self.checkNoOverlap(entries, file: file)
        self.url = url
        self.names = entries.keys.sorted()
        self.metadata = metadata
        self.data = data
        self.bufferStart = headerEnd
        self.entries = entries
    }

    /// The dtype and shape of a tensor, without reading its values.
    public func info(_ name: String) throws -> (dtype: SafeTensorsDType, shape: [Int]) {
        let e = try entry(name)
        return (e.dtype, e.shape)
    }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The values of a floating-point tensor as Float32, row-major. F32 is read as is; BF16 and F16 are
    /// widened exactly as torch's `.float()` does (every BF16/F16 value, including subnormals, infinities
    /// and NaNs, has an exact Float32). F64 is refused rather than silently rounded.
    public func floats(_ name: String) throws -> [Float] {
        let e = try entry(name)
        switch e.dtype {
        case .f32: return copyRaw(e) ?? decode(e) { Float(bitPattern: $0.element(UInt32.self, $1)) }
        case .bf16: return decode(e) { widenBF16($0.element(UInt16.self, $1)) }
        case .f16: return decode(e) { widenF16($0.element(UInt16.self, $1)) }
        default: throw wrongKind(name, e.dtype, wanted: "floats (F32, BF16 or F16)")
        }
    }

    /// The values of an integer tensor as Int64, row-major: I64 as is, I32 widened.
    public func int64s(_ name: String) throws -> [Int64] {
        let e = try entry(name)
        switch e.dtype {
        case .i64: return copyRaw(e) ?? decode(e) { $0.element(Int64.self, $1) }
        case .i32: return decode(e) { Int64($0.element(Int32.self, $1)) }
        default: throw wrongKind(name, e.dtype, wanted: "int64s (I64 or I32)")
        }
    }

    // MARK: Reading

    func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else {
            throw ModelFileError(.missingTensor, file: url.path,
                                 problem: "no tensor named \(quoted(name)) among its \(names.count) tensors",
                                 fix: nearestNames(to: name, in: names))
        }
        return e
    }

    /// Decodes each element of `e` with `element(bytes, index)`. The range was validated at open,
    /// so the buffer holds exactly `e.count` elements.
    private func decode<T>(_ e: Entry, _ element: (UnsafeRawBufferPointer, Int) -> T) -> [T] {
        data.withUnsafeBytes { raw in
            let start = bufferStart + e.range.lowerBound
            let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<(start + e.range.count)])
            return (0..<e.count).map { element(bytes, $0) }
        }
    }

    /// The fast path when the file's bytes already are the host's `T` (little-endian host, same width):
    /// one copy, no per-element work. Nil on a big-endian host, which then decodes element by element.
    private func copyRaw<T>(_ e: Entry) -> [T]? {
        #if _endian(little)
        let start = bufferStart + e.range.lowerBound
        return data.withUnsafeBytes { raw in
            [T](unsafeUninitializedCapacity: e.count) { out, initialized in
                UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(
                    rebasing: raw[start..<(start + e.range.count)]))
                initialized = e.count
            }
        }
        #else
        return nil
        #endif
    }

    private func wrongKind(_ name: String, _ dtype: SafeTensorsDType, wanted: String) -> ModelFileError {
        let fix: String
        switch dtype {
        case .f32, .bf16, .f16: fix = "Read it with floats(_:)"
        case .i64, .i32: fix = "Read it with int64s(_:)"
        default: fix = "Convert the tensor to F32 or I64 before saving"
        }
        let problem = "tensor \(quoted(name)) has dtype \(dtype.rawValue), which cannot be read as \(wanted)"
        return ModelFileError(.wrongDType, file: url.path, problem: problem, fix: fix)
    }

    // MARK: Validation at open

    private static func parseMetadata(_ value: JSONValue, file: String) throws -> [String: String] {
        guard let o = value.objectValue else {
            throw malformed(file, "\"__metadata__\" is \(value.summary), not an object of strings")
        }
        var out: [String: String] = [:]
        for (k, v) in o {
            guard let s = v.stringValue else {
                throw malformed(file, "\"__metadata__\" key \(quoted(k)) is \(v.summary), but metadata values "
                                + "must be strings")
            }
            out[k] = s
        }
        return out
    }

    /// Checks one header entry against the rules of the format and the real buffer length.
    private static func parseEntry(_ name: String, _ value: JSONValue, bufferLength: Int,
                                   file: String) throws -> Entry {
        let t = "tensor \(quoted(name))"
        guard let o = value.objectValue else { throw malformed(file, "\(t) is \(value.summary), not an object") }
        guard let dt = o["dtype"] else { throw malformed(file, "\(t) has no \"dtype\"") }
        guard let dtypeName = dt.stringValue else {
            throw malformed(file, "\(t): \"dtype\" is \(dt.summary), not a string")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw ModelFileError(.unsupported, file: file,
                                 problem: "\(t) has unknown dtype \(quoted(dtypeName)); known dtypes are \(known)")
        }
        guard let sh = o["shape"] else { throw malformed(file, "\(t) has no \"shape\"") }
        guard case .array(let dims) = sh else {
            throw malformed(file, "\(t): \"shape\" is \(sh.summary), not an array")
        }
        var shape: [Int] = []
        var count = 1   // overflow-checked product of the dims
        for d in dims {
            guard let n = d.intValue, n >= 0 else {
                throw malformed(file, "\(t): a shape entry is \(d.summary); dimensions must be non-negative integers")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow else {
                throw malformed(file, "\(t): the product of its shape overflows Int at dimension \(n)")
            }
            shape.append(n)
            count = product
        }
        guard let off = o["data_offsets"] else { throw malformed(file, "\(t) has no \"data_offsets\"") }
        guard case .array(let pair) = off, pair.count == 2, let begin = pair[0].intValue, let end = pair[1].intValue
        else {
            throw malformed(file, "\(t): \"data_offsets\" is \(off.summary); it must be [begin, end], two integers")
        }
        guard begin >= 0 else { throw malformed(file, "\(t): data_offsets [\(begin), \(end)] start before 0") }
        guard begin <= end else { throw malformed(file, "\(t): data_offsets [\(begin), \(end)] have begin > end") }
        guard end <= bufferLength else {
            throw malformed(file, "\(t): data_offsets [\(begin), \(end)] run past the \(bufferLength)-byte data buffer",
                            "The file is truncated")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, bytes == end - begin else {
            let needed = overflow ? "more than Int.max" : "\(bytes)"
            throw malformed(file, "\(t): shape \(shape) of \(dtype.rawValue) needs \(needed) bytes, "
                            + "but data_offsets [\(begin), \(end)] hold \(end - begin)")
        }
        return Entry(dtype: dtype, shape: shape, count: count, range: begin..<end)
    }

    /// Two tensors sharing bytes would alias each other's weights; refuse them (empty tensors share nothing).
    private static func checkNoOverlap(_ entries: [String: Entry], file: String) throws {
        let sorted = entries.filter { !$0.value.range.isEmpty }
            .sorted { ($0.value.range.lowerBound, $0.key) < ($1.value.range.lowerBound, $1.key) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.value.range.overlaps(b.value.range) {
            throw malformed(file, "tensors \(quoted(a.key)) (bytes \(a.value.range)) and \(quoted(b.key)) "
                            + "(bytes \(b.value.range)) overlap")
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Element `i` of a little-endian array of `T` starting at byte 0 (any alignment).
    @inline(__always) fileprivate func element<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
    }
}

private func malformed(_ file: String, _ problem: String, _ fix: String? = nil) -> ModelFileError {
    ModelFileError(.malformed, file: file, problem: problem, fix: fix)
}

/// BF16 is the upper half of a Float32: widening is a shift, exact for every value including NaN payloads.
@inline(__always) func widenBF16(_ h: UInt16) -> Float {
    Float(bitPattern: UInt32(h) << 16)
}

/// IEEE half to single, exact. Field by field: sign 1, exponent 5 (bias 15), mantissa 10.
@inline(__always) func widenF16(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x03FF)
    switch exponent {
    case 0:
        // Zero or subnormal: mantissa × 2^-24, exact in Float32 (mantissa < 2^10).
        let magnitude = Float(mantissa) * 0x1p-24
        return Float(bitPattern: sign | magnitude.bitPattern)
    case 0x1F:
        // Infinity keeps mantissa 0; a NaN keeps its payload, made quiet as the hardware conversion does.
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa == 0 ? 0 : 0x0040_0000 | mantissa << 13))
    default:
        return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)   // rebias 15 → 127
    }
}
