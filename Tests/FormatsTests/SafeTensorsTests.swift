// Safetensors reading, writing and sharded checkpoints. Bad files are crafted byte by byte in a
// temporary directory; each error test checks that the error is thrown AND that its one-line message
// names the file and the problem, because that line is all a user sees.
import Foundation
import XCTest
@testable import Formats

final class SafeTensorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// Writes `[u64 length][header][data]`; `length` overrides the true header length to lie about it.
    func raw(_ name: String, header: String, data: [UInt8] = [], length: UInt64? = nil) throws -> URL {
        var bytes = withUnsafeBytes(of: (length ?? UInt64(header.utf8.count)).littleEndian) { Array($0) }
        bytes += Array(header.utf8) + data
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// A valid file of hand-made tensors: (name, dtype, shape, little-endian bytes), offsets in order.
    func tensors(_ name: String, _ items: [(String, String, [Int], [UInt8])]) throws -> URL {
        var entries: [String] = []
        var data: [UInt8] = []
        for (n, dtype, shape, bytes) in items {
            entries.append("\"\(n)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(data.count),"
                           + "\(data.count + bytes.count)]}")
            data += bytes
        }
        return try raw(name, header: "{\(entries.joined(separator: ","))}", data: data)
    }

    func le16(_ values: [UInt16]) -> [UInt8] { values.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }

    func open(_ url: URL) throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: url) }

    // MARK: Round trips

    func testFloat32RoundTripWithMetadata() throws {
        let url = dir.appendingPathComponent("w.safetensors")
        let b: [Float] = [1, -2.5, .pi, .leastNonzeroMagnitude, -0.0, .infinity]
        try SafeTensorsWriter.write([(name: "b", shape: [2, 3], values: b), (name: "a", shape: [1], values: [7]),
                                     (name: "empty", shape: [0, 4], values: []),
                                     (name: "scalar", shape: [], values: [3])],
                                    metadata: ["format": "pt", "note": "quote \" and \\ and\nnewline"], to: url)
        let f = try open(url)
        XCTAssertEqual(f.names, ["a", "b", "empty", "scalar"])
        XCTAssertEqual(f.metadata, ["format": "pt", "note": "quote \" and \\ and\nnewline"])
        XCTAssertEqual(try f.floats("b").map(\.bitPattern), b.map(\.bitPattern))
        XCTAssertEqual(try f.info("b").shape, [2, 3])
        XCTAssertEqual(try f.info("b").dtype, .f32)
        XCTAssertEqual(try f.floats("a"), [7])
        XCTAssertEqual(try f.floats("empty"), [])
        XCTAssertEqual(try f.info("scalar").shape, [])
        XCTAssertEqual(try f.floats("scalar"), [3])
    }

    func testInt64RoundTripAndMixedDTypes() throws {
        let url = dir.appendingPathComponent("batch.safetensors")
        let ids: [Int64] = [0, 1, 255, .max, .min, -100]
        try SafeTensorsWriter.write([(name: "input_ids", shape: [2, 3], values: ids),
                                     (name: "labels", shape: [6], values: ids.reversed())], to: url)
        let f = try open(url)
        XCTAssertEqual(try f.int64s("input_ids"), ids)
        XCTAssertEqual(try f.int64s("labels"), ids.reversed())
        XCTAssertEqual(try f.info("labels").dtype, .i64)
        XCTAssertEqual(f.metadata, [:])

        let mixed = dir.appendingPathComponent("mixed.safetensors")
        try SafeTensorsWriter.write([.init(name: "x", shape: [2], values: .f32([0.5, 2])),
                                     .init(name: "n", shape: [1], values: .i64([-3]))], to: mixed)
        XCTAssertEqual(try open(mixed).floats("x"), [0.5, 2])
        XCTAssertEqual(try open(mixed).int64s("n"), [-3])
    }

    /// The exact bytes the Rust library writes: compact JSON, sorted names, space padding to 8, data in order.
    func testHeaderLayoutMatchesTheRustLibrary() throws {
        let url = dir.appendingPathComponent("layout.safetensors")
        try SafeTensorsWriter.write([(name: "b", shape: [1], values: [Float(2)]), (name: "a", shape: [1], values: [1])],
                                    metadata: ["format": "pt"], to: url)
        let bytes = [UInt8](try Data(contentsOf: url))
        let n = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
        XCTAssertEqual(n % 8, 0, "header length must keep the data 8-byte aligned")
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        let json = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
            + #""b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        XCTAssertEqual(header.trimmingCharacters(in: .whitespaces), json)
        XCTAssertTrue(header.hasSuffix(String(repeating: " ", count: n - json.utf8.count)))
        XCTAssertEqual(Array(bytes[(8 + n)...]), [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])   // 1.0f, 2.0f little-endian
    }

    func testUnusualNamesRoundTrip() throws {
        let url = dir.appendingPathComponent("names.safetensors")
        let names = ["with \"quote\"", "back\\slash", "tab\tand\u{1}control", "ünïcødé 🦙", ""]
        try SafeTensorsWriter.write(names.map { (name: $0, shape: [1], values: [Float(1)]) }, to: url)
        XCTAssertEqual(try open(url).names, names.sorted())
    }

    func testInt32IsWidenedToInt64() throws {
        let bytes: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x2A, 0, 0, 0]   // -1, 42
        let f = try open(try tensors("i32.safetensors", [("n", "I32", [2], bytes)]))
        XCTAssertEqual(try f.int64s("n"), [-1, 42])
    }

    // MARK: Widening BF16 and F16 (bit patterns worked out by hand)

    func testBFloat16IsTheUpperHalfOfFloat32() throws {
        let half: [UInt16] = [0x3F80, 0xC000, 0x7F80, 0xFF80, 0x7FC1, 0x0001, 0x8000, 0x3EAB]
        let want: [UInt32] = [0x3F80_0000, 0xC000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC1_0000, 0x0001_0000,
                              0x8000_0000, 0x3EAB_0000]   // 1, -2, inf, -inf, NaN (payload kept), subnormal, -0, ~1/3
        let f = try open(try tensors("bf16.safetensors", [("x", "BF16", [8], le16(half))]))
        XCTAssertEqual(try f.floats("x").map(\.bitPattern), want)
    }

    func testFloat16WideningIsExact() throws {
        let half: [UInt16] = [0x3C00, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x8000, 0xC000,
                              0x3555, 0x8001]
        let want: [UInt32] = [
            0x3F80_0000,   // 1
            0x3380_0000,   // smallest subnormal 2^-24
            0x387F_C000,   // largest subnormal 1023 × 2^-24
            0x3880_0000,   // smallest normal 2^-14
            0x477F_E000,   // largest finite 65504
            0x7F80_0000, 0xFF80_0000,   // ±inf
            0x7FC0_0000,   // the quiet NaN torch writes
            0x8000_0000, 0xC000_0000,   // -0, -2
            0x3EAA_A000,   // 0.333251953125 (exp 13 → 125, mantissa 0x155 << 13)
            0xB380_0000,   // -2^-24
        ]
        let f = try open(try tensors("f16.safetensors", [("x", "F16", [12], le16(half))]))
        XCTAssertEqual(try f.floats("x").map(\.bitPattern), want)
        let signalling = try open(try tensors("nan.safetensors", [("x", "F16", [1], le16([0x7C01]))]))
        XCTAssertTrue(try signalling.floats("x")[0].isNaN, "an F16 NaN with any payload stays NaN")
    }

    // MARK: Malformed and hostile files

    func testMissingAndTooShortFiles() throws {
        let missing = dir.appendingPathComponent("nope.safetensors")
        assertModelFileError(.io, file: missing.path, mentions: ["does not exist"]) { try open(missing) }
        let short = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: short)
        assertModelFileError(.malformed, file: short.path, mentions: ["3 bytes", "too short"]) { try open(short) }
    }

    func testHeaderLengthPastEndOrAbsurd() throws {
        let past = try raw("past.safetensors", header: "{}", length: 4096)
        assertModelFileError(.malformed, file: past.path, mentions: ["4096", "past the end", "truncated"]) {
            try open(past)
        }
        let huge = try raw("huge.safetensors", header: "{}", length: .max)
        assertModelFileError(.malformed, file: huge.path, mentions: ["\(UInt64.max)", "100 MB limit"]) {
            try open(huge)
        }
    }

    func testHeaderNotJSONOrNotAnObject() throws {
        let garbage = try raw("garbage.safetensors", header: "{\"a\": [1, 2")
        assertModelFileError(.malformed, file: garbage.path, mentions: ["not valid JSON"]) { try open(garbage) }
        let deep = try raw("deep.safetensors", header: String(repeating: "[", count: 50_000))
        assertModelFileError(.malformed, file: deep.path, mentions: ["not valid JSON"]) { try open(deep) }
        let array = try raw("array.safetensors", header: "[1, 2]")
        assertModelFileError(.malformed, file: array.path, mentions: ["an array of 2 values", "not a JSON object"]) {
            try open(array)
        }
    }

    func testEntriesWithMissingOrMistypedFields() throws {
        let cases: [(String, [String])] = [
            (#"{"t":{"shape":[1],"data_offsets":[0,4]}}"#, ["\"t\"", "no \"dtype\""]),
            (#"{"t":{"dtype":"F32","data_offsets":[0,4]}}"#, ["\"t\"", "no \"shape\""]),
            (#"{"t":{"dtype":"F32","shape":[1]}}"#, ["\"t\"", "no \"data_offsets\""]),
            (#"{"t":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}"#, ["\"dtype\" is the number 5", "not a string"]),
            (#"{"t":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, ["\"shape\" is the string \"1\""]),
            (#"{"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, ["the number 1.5", "non-negative integers"]),
            (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4]}}"#, ["\"data_offsets\"", "[begin, end]"]),
            (#"{"t":[1]}"#, ["tensor \"t\" is an array of 1 value,", "not an object"]),
            (#"{"__metadata__":{"format":1}}"#, ["\"__metadata__\" key \"format\"", "must be strings"]),
            (#"{"__metadata__":[]}"#, ["\"__metadata__\" is an array", "not an object of strings"]),
        ]
        for (i, (header, mentions)) in cases.enumerated() {
            let url = try raw("bad\(i).safetensors", header: header, data: [UInt8](repeating: 0, count: 4))
            assertModelFileError(.malformed, file: url.path, mentions: mentions) { try open(url) }
        }
    }

    func testBadShapesDTypesAndOffsets() throws {
        let four = [UInt8](repeating: 0, count: 4)
        let cases: [(String, ModelFileError.Kind, [String])] = [
            (#"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, .malformed,
             ["the number -1", "non-negative"]),
            (#"{"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}"#, .malformed,
             ["overflows"]),
            (#"{"t":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}"#, .unsupported,
             ["unknown dtype \"Q4\"", "BF16"]),
            (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, .malformed, ["[0, 8]", "4-byte data buffer"]),
            (#"{"t":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, .malformed, ["[4, 0]", "begin > end"]),
            (#"{"t":{"dtype":"F32","shape":[0],"data_offsets":[-4,0]}}"#, .malformed, ["[-4, 0]", "before 0"]),
            (#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, .malformed, ["needs 8 bytes", "hold 4"]),
            (#"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"#
             + #""b":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}"#, .malformed, ["\"a\"", "\"b\"", "overlap"]),
        ]
        for (i, (header, kind, mentions)) in cases.enumerated() {
            let url = try raw("bad\(i).safetensors", header: header, data: four)
            assertModelFileError(kind, file: url.path, mentions: mentions) { try open(url) }
        }
    }

    func testMissingTensorListsNearestNames() throws {
        let url = try tensors("model.safetensors", [
            ("model.layers.0.self_attn.q_proj.weight", "F32", [1], [0, 0, 0, 0]),
            ("model.layers.0.self_attn.k_proj.weight", "F32", [1], [0, 0, 0, 0]),
            ("model.norm.weight", "F32", [1], [0, 0, 0, 0]),
        ])
        let f = try open(url)
        assertModelFileError(.missingTensor, file: url.path,
                             mentions: ["no tensor named \"model.layers.0.self_attn.q_proj.bias\"", "3 tensors",
                                        "\"model.layers.0.self_attn.q_proj.weight\""]) {
            try f.floats("model.layers.0.self_attn.q_proj.bias")
        }
        assertModelFileError(.missingTensor, file: url.path,
                             mentions: ["\"lm_head.weight\"", "Names in the file include"]) {
            try f.info("lm_head.weight")
        }
    }

    func testReadingTheWrongKind() throws {
        let url = try tensors("kinds.safetensors", [("ids", "I64", [1], [UInt8](repeating: 0, count: 8)),
                                                    ("w", "F32", [1], [0, 0, 0, 0]),
                                                    ("d", "F64", [1], [UInt8](repeating: 0, count: 8))])
        let f = try open(url)
        assertModelFileError(.wrongDType, file: url.path, mentions: ["\"ids\"", "I64", "floats", "int64s"]) {
            try f.floats("ids")
        }
        assertModelFileError(.wrongDType, file: url.path, mentions: ["\"w\"", "F32", "int64s"]) { try f.int64s("w") }
        assertModelFileError(.wrongDType, file: url.path, mentions: ["F64", "Convert"]) { try f.floats("d") }
    }
}

// MARK: Writing: bad input and atomicity

extension SafeTensorsTests {
    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
    }

    func testWriterRefusesBadInput() throws {
        let url = dir.appendingPathComponent("out.safetensors")
        let cases: [([(name: String, shape: [Int], values: [Float])], [String])] = [
            ([("w", [2, 3], [1, 2, 3])], ["\"w\"", "[2, 3]", "6", "3 values"]),
            ([("w", [-1], [])], ["\"w\"", "negative"]),
            ([("w", [1], [1]), ("w", [1], [2])], ["\"w\"", "twice"]),
            ([("__metadata__", [1], [1])], ["reserved"]),
        ]
        for (tensors, mentions) in cases {
            assertModelFileError(.invalidArgument, file: url.path, mentions: mentions) {
                try SafeTensorsWriter.write(tensors, to: url)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertEqual(try leftovers(), [])
        let nowhere = dir.appendingPathComponent("no/such/dir/out.safetensors")
        assertModelFileError(.io, file: nowhere.path, mentions: ["temporary file", "writable"]) {
            try SafeTensorsWriter.write([(name: "w", shape: [1], values: [Float(1)])], to: nowhere)
        }
    }

    /// A failed write leaves the previous file byte for byte; a good one replaces it; no temporary file stays.
    func testWritesAreAtomic() throws {
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try SafeTensorsWriter.write([(name: "w", shape: [2], values: [Float(1), 2])], to: url)
        XCTAssertEqual(try leftovers(), [])
        let good = try Data(contentsOf: url)
        XCTAssertThrowsError(try SafeTensorsWriter.write([(name: "w", shape: [3], values: [Float(9)])], to: url))
        XCTAssertEqual(try Data(contentsOf: url), good, "a failed write must not touch the existing file")
        XCTAssertEqual(try leftovers(), [])
        try SafeTensorsWriter.write([(name: "w", shape: [1], values: [Float(5)])], to: url)
        XCTAssertEqual(try open(url).floats("w"), [5])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["ckpt.safetensors"])
    }
}

// MARK: Checkpoints: one file or an index with shards

extension SafeTensorsTests {
    func writeIndex(_ body: String) throws {
        try Data(body.utf8).write(to: dir.appendingPathComponent(SafeTensorsCheckpoint.indexFileName))
    }

    func writeShards() throws {
        try SafeTensorsWriter.write([(name: "a", shape: [2], values: [Float(1), 2]),
                                     (name: "b", shape: [1], values: [3])],
                                    to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try SafeTensorsWriter.write([(name: "c", shape: [1, 1], values: [Int64(4)])],
                                    to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
    }

    func testSingleFileCheckpoint() throws {
        try SafeTensorsWriter.write([(name: "w", shape: [1], values: [Float(1)])], metadata: ["format": "pt"],
                                    to: dir.appendingPathComponent("model.safetensors"))
        let c = try SafeTensorsCheckpoint(directory: dir)
        XCTAssertEqual(c.names, ["w"])
        XCTAssertEqual(c.metadata, ["format": "pt"])
        XCTAssertEqual(try c.floats("w"), [1])
        XCTAssertEqual(c.files.count, 1)
    }

    func testShardedCheckpointReadsAcrossShards() throws {
        try writeShards()
        try writeIndex(#"""
        {"metadata": {"total_size": 16}, "weight_map": {"a": "model-00001-of-00002.safetensors",
         "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}
        """#)
        let c = try SafeTensorsCheckpoint(directory: dir)
        XCTAssertEqual(c.names, ["a", "b", "c"])
        XCTAssertEqual(c.files.count, 2)
        XCTAssertEqual(c.metadata, ["total_size": "16"])
        XCTAssertEqual(try c.floats("a"), [1, 2])
        XCTAssertEqual(try c.floats("b"), [3])
        XCTAssertEqual(try c.int64s("c"), [4])
        XCTAssertEqual(try c.info("c").shape, [1, 1])
        XCTAssertTrue(c.contains("b"))
        assertModelFileError(.missingTensor, file: dir.path, mentions: ["\"d\"", "3 of this checkpoint", "\"a\""]) {
            try c.floats("d")
        }
    }

    func testShardedCheckpointErrors() throws {
        let index = dir.appendingPathComponent(SafeTensorsCheckpoint.indexFileName).path
        assertModelFileError(.io, file: dir.path, mentions: ["no model.safetensors", "index.json"]) {
            try SafeTensorsCheckpoint(directory: dir)
        }
        try writeShards()
        let cases: [(String, ModelFileError.Kind, [String])] = [
            ("{\"weight_map\": ", .malformed, ["not valid JSON"]),
            ("[]", .malformed, ["not a JSON object"]),
            ("{\"metadata\": {}}", .malformed, ["no \"weight_map\""]),
            ("{\"weight_map\": []}", .malformed, ["\"weight_map\" is an array of 0 values", "not an object"]),
            ("{\"weight_map\": {\"a\": 3}}", .malformed, ["\"a\"", "the number 3", "not a shard file name"]),
            ("{\"weight_map\": {\"a\": \"model-00003-of-00003.safetensors\"}}", .io,
             ["\"model-00003-of-00003.safetensors\"", "missing"]),
            ("{\"weight_map\": {\"a\": \"../model-00001-of-00002.safetensors\"}}", .malformed,
             ["\"../model-00001-of-00002.safetensors\"", "not a plain file name"]),
            ("{\"weight_map\": {\"a\": \"/etc/passwd\"}}", .malformed, ["\"/etc/passwd\"", "not a plain file name"]),
            ("{\"weight_map\": {\"a\": \"..\"}}", .malformed, ["not a plain file name"]),
            ("{\"weight_map\": {\"c\": \"model-00001-of-00002.safetensors\"}}", .malformed,
             ["\"c\"", "does not hold it"]),
        ]
        for (body, kind, mentions) in cases {
            try writeIndex(body)
            assertModelFileError(kind, file: index, mentions: mentions) { try SafeTensorsCheckpoint(directory: dir) }
        }
    }
}
