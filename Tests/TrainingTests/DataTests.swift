// The data side of training: tokenizer, corpus and token files, their error messages, and the loader's
// promises (shifted targets, disjoint dp shards equal to the single-process batch, determinism, exact
// resume, context shards). Token files are written to a fresh temp dir per test.
//
// Legend: N = tokens, T = sequence length, W = windows per epoch, B = micro-batch, A = grad accumulation,
//         dp = data-parallel ranks.

import Foundation
import XCTest
@testable import Training

final class DataTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("DataTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Asserts `body` throws a `TrainingError` whose message contains every one of `parts`.
    func assertThrows(_ parts: [String], file: StaticString = #filePath, line: UInt = #line,
                      _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error mentioning \(parts)", file: file, line: line)
        } catch let error as TrainingError {
            for part in parts where !error.description.contains(part) {
                XCTFail("error \"\(error.description)\" does not mention \"\(part)\"", file: file, line: line)
            }
        } catch {
            XCTFail("expected a TrainingError, got \(error)", file: file, line: line)
        }
    }

    func url(_ name: String) -> URL { dir.appendingPathComponent(name) }
    func all(_ d: TokenDataset) -> [Int] { d.tokens(0..<d.count) }
    func write(_ bytes: [UInt8], _ name: String) throws -> URL {
        try Data(bytes).write(to: url(name))
        return url(name)
    }

    // MARK: Tokenizer

    func testByteTokenizerRoundTripsASCIIAndNonASCII() {
        let tok = ByteTokenizer()
        XCTAssertEqual(tok.vocabSize, 256)
        XCTAssertEqual(tok.encode("Hi!"), [72, 105, 33])
        for text in ["", "To be, or not to be", "naïve café — “quoted” 世界 🎭\n\t"] {
            let ids = tok.encode(text)
            XCTAssertEqual(ids.count, text.utf8.count)
            XCTAssertTrue(ids.allSatisfy { (0..<256).contains($0) })
            XCTAssertEqual(tok.decode(ids), text)
        }
    }

    func testDecodeIsLossyNeverCrashes() {
        let tok = ByteTokenizer()
        let e = tok.encode("é")                                   // [0xC3, 0xA9]
        XCTAssertEqual(tok.decode([e[0]]), "\u{FFFD}")            // cut mid-character
        XCTAssertEqual(tok.decode([65] + [e[1]] + [66]), "A\u{FFFD}B")
        XCTAssertEqual(tok.decode([72, 300, -1, 105]), "H\u{FFFD}\u{FFFD}i")   // ids outside the vocab
    }

    // MARK: Sources of tokens

    func testEmbeddedCorpusIsAboutOneMegabyteOfShakespeareWithoutBoilerplate() throws {
        let d = try TokenDataset.embedded()
        XCTAssertTrue((900_000...1_200_000).contains(d.count), "embedded corpus has \(d.count) bytes")
        let text = ByteTokenizer().decode(all(d))
        XCTAssertTrue(text.hasPrefix("HAMLET, PRINCE OF DENMARK"))
        XCTAssertTrue(text.contains("To be, or not to be"))
        for banned in ["Gutenberg", "GUTENBERG", "LICENSE", "***", "eBook", "Etext", "\r"] {
            XCTAssertFalse(text.contains(banned), "embedded corpus contains \"\(banned)\"")
        }
        XCTAssertNoThrow(try d.validate(vocabSize: 256))
    }

    func testTextFileIsByteTokenized() throws {
        let text = "Sweet are the uses of adversity — ünïcode 🎭\n"
        try text.write(to: url("a.txt"), atomically: true, encoding: .utf8)
        let d = try TokenDataset.textFile(url("a.txt"))
        XCTAssertEqual(all(d), ByteTokenizer().encode(text))
        XCTAssertEqual(d.name, url("a.txt").path)
        XCTAssertEqual(all(TokenDataset(text: text)), ByteTokenizer().encode(text))
    }

    func testNanoGPTRawFilesUint16AndUint32() throws {
        let ids = [0, 1, 255, 256, 50256, 65535]
        try TokenDataset.writeTokenFile(ids, to: url("train.bin"), format: .raw(.uint16))
        XCTAssertEqual(try Data(contentsOf: url("train.bin")).count, ids.count * 2)   // no header
        XCTAssertEqual(all(try TokenDataset.tokenFile(url("train.bin"), dtype: .uint16)), ids)
        let wide = ids + [65536, 100_277, 4_000_000_000]
        try TokenDataset.writeTokenFile(wide, to: url("wide.bin"), format: .raw(.uint32))
        let d = try TokenDataset.tokenFile(url("wide.bin"), dtype: .uint32)
        XCTAssertEqual(all(d), wide)
        XCTAssertEqual(d[7], 100_277)
        XCTAssertEqual(d.tokens(2..<4), [255, 256])
    }

    func testLLMCFilesV1AndV2AreDetectedByMagic() throws {
        let ids = [7, 0, 65535, 42, 1]
        try TokenDataset.writeTokenFile(ids, to: url("v1.bin"), format: .llmc(.uint16))
        let raw = try Data(contentsOf: url("v1.bin"))
        XCTAssertEqual(raw.count, 1024 + 2 * ids.count)
        XCTAssertEqual(Array(raw[0..<12]), [0x88, 0xD8, 0x34, 0x01, 1, 0, 0, 0, 5, 0, 0, 0])   // 20240520, 1, 5 LE
        XCTAssertEqual(all(try TokenDataset.tokenFile(url("v1.bin"))), ids)                 // no dtype needed
        let wide = ids + [70_000]
        try TokenDataset.writeTokenFile(wide, to: url("v2.bin"), format: .llmc(.uint32))
        XCTAssertEqual(try Data(contentsOf: url("v2.bin")).count, 1024 + 4 * wide.count)
        XCTAssertEqual(all(try TokenDataset.tokenFile(url("v2.bin"))), wide)
        XCTAssertEqual(all(try TokenDataset.tokenFile(url("v2.bin"), dtype: .uint32)), wide)
    }

    /// Files laid out byte by byte here, as llm.c's and nanoGPT's Python writers lay them out
    /// (struct '<i' header, np.uint16 / np.uint32 .tofile), independent of `writeTokenFile`.
    func testHandBuiltFilesInTheirWritersLayout() throws {
        func le(_ v: Int, _ width: Int) -> [UInt8] { (0..<width).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        let ids = [50256, 3, 70_000]
        var header = [20240520, 2, ids.count].flatMap { le($0, 4) }
        header += [UInt8](repeating: 0, count: 1024 - header.count)
        let v2 = try write(header + ids.flatMap { le($0, 4) }, "handmade_v2.bin")
        XCTAssertEqual(all(try TokenDataset.tokenFile(v2)), ids)
        let nano = try write([50256, 3, 65535].flatMap { le($0, 2) }, "handmade_train.bin")
        XCTAssertEqual(all(try TokenDataset.tokenFile(nano, dtype: .uint16)), [50256, 3, 65535])
    }

    // MARK: Errors name the file, the value and the fix

    func testFileErrors() throws {
        let missing = url("missing.bin").path
        assertThrows([missing, "does not exist"]) { _ = try TokenDataset.tokenFile(url("missing.bin"), dtype: .uint16) }
        assertThrows([missing, "does not exist"]) { _ = try TokenDataset.textFile(url("missing.bin")) }
        assertThrows([dir.path, "is a directory"]) { _ = try TokenDataset.textFile(self.dir) }

        let empty = try write([], "empty.bin")
        assertThrows([empty.path, "empty (0 bytes)"]) { _ = try TokenDataset.tokenFile(empty, dtype: .uint16) }
        assertThrows([empty.path, "empty (0 bytes)"]) { _ = try TokenDataset.textFile(empty) }

        let odd = try write([1, 0, 2, 0, 3], "odd.bin")
        assertThrows([odd.path, "5 bytes", "multiple of 2", "uint16"]) {
            _ = try TokenDataset.tokenFile(odd, dtype: .uint16)
        }
        assertThrows([odd.path, "pass its dtype"]) { _ = try TokenDataset.tokenFile(odd) }
        let six = try write([1, 0, 2, 0, 3, 0], "six.bin")
        assertThrows([six.path, "6 bytes", "multiple of 4", "uint32"]) {
            _ = try TokenDataset.tokenFile(six, dtype: .uint32)
        }
    }

    func testLLMCHeaderErrors() throws {
        try TokenDataset.writeTokenFile(Array(0..<10), to: url("h.bin"), format: .llmc(.uint16))
        var bytes = [UInt8](try Data(contentsOf: url("h.bin")))
        let short = try write(Array(bytes.dropLast(4)), "short.bin")        // header says 10, holds 8
        assertThrows([short.path, "header says 10 tokens", "holds 8 tokens"]) { _ = try TokenDataset.tokenFile(short) }
        let ragged = try write(Array(bytes.dropLast(1)), "ragged.bin")      // 19 bytes of uint16
        assertThrows([ragged.path, "header says 10 tokens", "19 bytes"]) { _ = try TokenDataset.tokenFile(ragged) }
        let truncated = try write(Array(bytes.prefix(100)), "trunc.bin")
        assertThrows([truncated.path, "100 bytes", "1024-byte header"]) { _ = try TokenDataset.tokenFile(truncated) }
        bytes[4] = 3                                                        // version 3
        let v3 = try write(bytes, "v3.bin")
        assertThrows([v3.path, "version 3"]) { _ = try TokenDataset.tokenFile(v3) }
        assertThrows([url("h.bin").path, "version 1", "dtype uint32"]) {
            _ = try TokenDataset.tokenFile(self.url("h.bin"), dtype: .uint32)
        }
        try TokenDataset.writeTokenFile([], to: url("none.bin"), format: .llmc(.uint16))
        assertThrows([url("none.bin").path, "0 tokens"]) { _ = try TokenDataset.tokenFile(self.url("none.bin")) }
    }

    func testTokenIdBeyondVocabNamesIdAndPosition() throws {
        try TokenDataset.writeTokenFile([1, 2, 300, 3, 999], to: url("ids.bin"), format: .raw(.uint16))
        let d = try TokenDataset.tokenFile(url("ids.bin"), dtype: .uint16)
        assertThrows([url("ids.bin").path, "token id 300 at position 2", "0..<256"]) { try d.validate(vocabSize: 256) }
        XCTAssertNoThrow(try d.validate(vocabSize: 1000))
        assertThrows([url("ids.bin").path, "token id 300 at position 2"]) {   // the loader checks up front
            _ = try MicroBatchLoader(dataset: d, microBatchSize: 1, sequenceLength: 1, vocabSize: 256)
        }
        assertThrows(["token id -1 at position 1"]) { try TokenDataset(tokens: [0, -1]).validate(vocabSize: 8) }
    }

    func testCorpusShorterThanOneWindowPerRank() throws {
        let d = TokenDataset(tokens: Array(0..<10), name: "tiny.bin")
        assertThrows(["tiny.bin", "10 tokens", "seq_len 4 + 1", "3 data-parallel ranks", "needs 15"]) {
            _ = try MicroBatchLoader(dataset: d, microBatchSize: 1, sequenceLength: 4, vocabSize: 16, dpSize: 3)
        }
        XCTAssertNoThrow(try MicroBatchLoader(dataset: d, microBatchSize: 1, sequenceLength: 4, vocabSize: 16,
                                              dpSize: 2))
    }

    // MARK: Loader

    /// Tokens equal to their positions, so every id says where it came from.
    func counting(_ n: Int) -> TokenDataset { TokenDataset(tokens: Array(0..<n), name: "counting") }

    func testWindowsTargetsShiftAndPositions() throws {
        var loader = try MicroBatchLoader(dataset: counting(23), microBatchSize: 2, sequenceLength: 4,
                                          vocabSize: 23, shuffle: false)
        XCTAssertEqual(loader.windowsPerEpoch, 4)                     // 23 / 5; tokens 20, 21, 22 unused
        let b = loader.next()
        XCTAssertEqual(b.inputs, [0, 1, 2, 3, 5, 6, 7, 8])            // [B, T]
        XCTAssertEqual(b.targets, [1, 2, 3, 4, 6, 7, 8, 9])           // the next token
        XCTAssertEqual(b.positions, [0, 1, 2, 3])
        XCTAssertEqual(b.windowStarts, [0, 5])
        XCTAssertEqual(loader.next().inputs, [10, 11, 12, 13, 15, 16, 17, 18])
        XCTAssertEqual(loader.next().windowStarts, [0, 5])            // wrapped into epoch 1
        XCTAssertEqual(loader.state.epoch, 1)

        var shuffled = try MicroBatchLoader(dataset: counting(1000), microBatchSize: 3, sequenceLength: 7,
                                            vocabSize: 1000, seed: 5)
        for _ in 0..<50 {
            let s = shuffled.next()
            for row in 0..<s.batchSize {
                let start = s.windowStarts[row]
                XCTAssertEqual(start % 8, 0)
                XCTAssertEqual(Array(s.inputRow(row)), Array(start..<(start + 7)))
                XCTAssertEqual(Array(s.targetRow(row)), Array((start + 1)..<(start + 8)))
            }
        }
    }

    func testEachEpochVisitsEveryWindowOnceAndSeedsDiffer() {
        for epoch in 0..<3 {
            XCTAssertEqual(MicroBatchLoader.order(epoch: epoch, windows: 37, seed: 1, shuffle: true).sorted(),
                           Array(0..<37))
        }
        let e0 = MicroBatchLoader.order(epoch: 0, windows: 37, seed: 1, shuffle: true)
        XCTAssertEqual(e0, MicroBatchLoader.order(epoch: 0, windows: 37, seed: 1, shuffle: true))
        XCTAssertNotEqual(e0, MicroBatchLoader.order(epoch: 1, windows: 37, seed: 1, shuffle: true))
        XCTAssertNotEqual(e0, MicroBatchLoader.order(epoch: 0, windows: 37, seed: 2, shuffle: true))
        XCTAssertEqual(MicroBatchLoader.order(epoch: 4, windows: 5, seed: 1, shuffle: false), [0, 1, 2, 3, 4])
    }

    func testDeterminismSameSeedSameBatches() throws {
        let d = try TokenDataset.embedded()
        func run(seed: Int) throws -> [Batch] {
            var l = try MicroBatchLoader(dataset: d, microBatchSize: 4, sequenceLength: 64, vocabSize: 256, seed: seed)
            return (0..<20).map { _ in l.next() }
        }
        XCTAssertEqual(try run(seed: 42), try run(seed: 42))
        XCTAssertNotEqual(try run(seed: 42).map(\.windowStarts), try run(seed: 43).map(\.windowStarts))
    }

    /// dp ranks × A micro-batches of B == one process with micro-batch dp·B and the same A, row for row
    /// (rank-major), == one process with micro-batch G = B·A·dp and A = 1; shards are disjoint within an
    /// epoch and together cover it. Several steps, crossing epoch boundaries (W = 33 is no multiple of G).
    func testDataParallelShardsEqualSingleProcessBatch() throws {
        let (B, A, dp, T) = (2, 3, 3, 5)
        let d = counting(200)                                          // W = 200 / 6 = 33
        func loader(rank: Int, size: Int, micro: Int) throws -> MicroBatchLoader {
            try MicroBatchLoader(dataset: d, microBatchSize: micro, sequenceLength: T, vocabSize: 200,
                                 dpRank: rank, dpSize: size, seed: 7)
        }
        var ranks = try (0..<dp).map { try loader(rank: $0, size: dp, micro: B) }
        var single = try loader(rank: 0, size: 1, micro: dp * B)
        var whole = try loader(rank: 0, size: 1, micro: B * A * dp)
        var seen: [[Int]] = Array(repeating: [], count: dp)            // windows per rank, first epoch
        for step in 0..<6 {
            var stepRows: [Batch] = []
            for micro in 0..<A {
                let parts = (0..<dp).map { ranks[$0].next() }
                let reference = single.next()
                XCTAssertEqual(Batch.concatenated(parts), reference, "step \(step) micro-step \(micro)")
                XCTAssertEqual(Set(ranks.map(\.state)).count, 1, "ranks' positions diverged")
                if step == 0 { for r in 0..<dp { seen[r] += parts[r].windowStarts } }
                stepRows.append(reference)
            }
            XCTAssertEqual(Batch.concatenated(stepRows), whole.next(), "step \(step): global batch")
        }
        // Step 0 consumed 18 of 33 windows of epoch 0: no window on two ranks, none repeated.
        let flat = seen.flatMap { $0 }
        XCTAssertEqual(flat.count, B * A * dp)
        XCTAssertEqual(Set(flat).count, flat.count)
        // Over one full epoch (single process, dp = 1, micro-batch 1) every window appears once.
        var one = try loader(rank: 0, size: 1, micro: 1)
        XCTAssertEqual(Set((0..<33).flatMap { _ in one.next().windowStarts }), Set((0..<33).map { $0 * 6 }))
    }

    func testResumeFromSavedStateContinuesExactly() throws {
        let d = try TokenDataset.embedded()
        func make(_ state: LoaderState?, rank: Int = 1) throws -> MicroBatchLoader {
            try MicroBatchLoader(dataset: d, microBatchSize: 8, sequenceLength: 128, vocabSize: 256,
                                 dpRank: rank, dpSize: 2, seed: 3, state: state)
        }
        var uninterrupted = try make(nil)
        let expected = (0..<600).map { _ in uninterrupted.next() }     // W = 8031: crosses epoch 0 → 1
        XCTAssertEqual(uninterrupted.state.epoch, 1)
        for k in [0, 1, 250, 501] {
            var first = try make(nil)
            for _ in 0..<k { _ = first.next() }
            let saved = try JSONEncoder().encode(first.state)           // as a checkpoint would
            var resumed = try make(try JSONDecoder().decode(LoaderState.self, from: saved))
            XCTAssertEqual((0..<(600 - k)).map { _ in resumed.next() }, Array(expected[k...]), "resumed after \(k)")
        }
        var other = try make(nil)
        _ = other.next()
        assertThrows(["seed 3", "seed 4"]) {
            _ = try MicroBatchLoader(dataset: d, microBatchSize: 8, sequenceLength: 128, vocabSize: 256, seed: 4,
                                     state: other.state)
        }
        assertThrows(["8031 windows", "seq_len 64", "15938"]) {
            _ = try MicroBatchLoader(dataset: d, microBatchSize: 8, sequenceLength: 64, vocabSize: 256, seed: 3,
                                     state: other.state)
        }
    }

    // MARK: Context parallelism

    func testContextShardCutsContiguousChunksWithGlobalPositions() throws {
        var loader = try MicroBatchLoader(dataset: counting(100), microBatchSize: 2, sequenceLength: 8,
                                          vocabSize: 100, shuffle: false)
        let b = loader.next()                                          // rows start at 0 and 9
        let s1 = try b.contextShard(rank: 1, size: 4)
        XCTAssertEqual(s1.inputs, [2, 3, 11, 12])                      // [B, T/4]
        XCTAssertEqual(s1.targets, [3, 4, 12, 13])
        XCTAssertEqual(s1.positions, [2, 3])                           // global positions for RoPE
        XCTAssertEqual(s1.windowStarts, b.windowStarts)
        // The shards, put side by side again, are the batch.
        let shards = try (0..<4).map { try b.contextShard(rank: $0, size: 4) }
        XCTAssertEqual(shards.flatMap(\.positions), b.positions)
        for row in 0..<2 {
            XCTAssertEqual(shards.flatMap { Array($0.inputRow(row)) }, Array(b.inputRow(row)))
            XCTAssertEqual(shards.flatMap { Array($0.targetRow(row)) }, Array(b.targetRow(row)))
        }
        XCTAssertEqual(try b.contextShard(rank: 0, size: 1), b)
        assertThrows(["sequence length 8", "context-parallel size 3"]) { _ = try b.contextShard(rank: 0, size: 3) }
    }
}
