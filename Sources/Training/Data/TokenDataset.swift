// The token stream a run trains on, wherever it comes from: the embedded Shakespeare corpus, a user's
// text file (byte-tokenized), or a pre-tokenized file from nanoGPT or llm.c (TokenDataset+Files.swift).
// Files are memory-mapped and read a window at a time, so a multi-gigabyte train.bin costs no RAM up
// front and loading is instant; only the windows a rank actually uses are ever paged in.
//
// Legend: N = tokens in the dataset, T = sequence length, dp = data-parallel ranks.

import EmbeddedCorpus
import Foundation

/// A read-only sequence of `count` token ids (`[N]`), random access by position.
public struct TokenDataset: Sendable {
    /// Where the tokens live. `mapped` reads little-endian unsigned ints of `width` bytes from `data`
    /// starting at byte `offset` (a text file is `width` 1: a byte is a token).
    enum Storage: Sendable {
        case ints([Int])
        case mapped(Data, offset: Int, width: Int)
    }

    /// Human-readable origin, used in every error message: a path, or "embedded corpus (…)".
    public let name: String
    /// N, the number of tokens.
    public let count: Int
    let storage: Storage

    init(name: String, count: Int, storage: Storage) {
        (self.name, self.count, self.storage) = (name, count, storage)
    }

    /// Tokens already in memory (tests, generated data, a tokenizer run in-process). `[N]`
    public init(tokens: [Int], name: String = "in-memory tokens") {
        self.init(name: name, count: tokens.count, storage: .ints(tokens))
    }

    /// `text` byte-tokenized with `ByteTokenizer`. `[N]`, N = UTF-8 byte count.
    public init(text: String, name: String = "in-memory text") {
        self.init(tokens: ByteTokenizer().encode(text), name: name)
    }

    /// The default corpus: ~1 MB of Shakespeare shipped in the `EmbeddedCorpus` resource bundle
    /// (data/README.md), byte-tokenized. Works offline with no flags: the zero-setup path of `train`.
    public static func embedded() throws -> TokenDataset {
        guard let url = EmbeddedCorpus.url else {
            throw TrainingError.data("embedded corpus \(EmbeddedCorpus.fileName) not found in the resource "
                                     + "bundle Picotron_EmbeddedCorpus.resources: rebuild with `swift build`, "
                                     + "or pass --text FILE")
        }
        let text = try textFile(url)
        return TokenDataset(name: "embedded corpus (\(EmbeddedCorpus.fileName))", count: text.count,
                            storage: text.storage)
    }

    /// A UTF-8 text file (`--text FILE`), byte-tokenized: its bytes are its token ids, so it is mapped
    /// as it is rather than decoded and re-encoded.
    public static func textFile(_ url: URL) throws -> TokenDataset {
        let data = try mapFile(url, what: "text file")
        guard !data.isEmpty else {
            throw TrainingError.data("text file \(url.path) is empty (0 bytes): put some text in it "
                                     + "or pass another file")
        }
        return TokenDataset(name: url.path, count: data.count, storage: .mapped(data, offset: 0, width: 1))
    }

    /// Maps `url` into memory (no copy), turning "missing" and "unreadable" into messages with the fix.
    static func mapFile(_ url: URL, what: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TrainingError.data("\(what) \(url.path) does not exist: check the path "
                                     + "(relative paths start from \(FileManager.default.currentDirectoryPath))")
        }
        guard !isDirectory.boolValue else {
            throw TrainingError.data("\(what) \(url.path) is a directory: pass the file inside it (e.g. train.bin)")
        }
        do {
            return try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw TrainingError.data("\(what) \(url.path) cannot be read (\(error.localizedDescription)): "
                                     + "check its permissions")
        }
    }

    // MARK: Reading

    /// Token at position `i`.
    public subscript(i: Int) -> Int {
        precondition(0 <= i && i < count, "token index \(i) out of range 0..<\(count) in \(name)")
        return tokens(i..<(i + 1))[0]
    }

    /// Tokens at positions `range`, copied out as `Int`: `[range.count]`. This is the one place mapped
    /// bytes are decoded; the loader calls it once per window (T + 1 tokens).
    public func tokens(_ range: Range<Int>) -> [Int] {
        precondition(0 <= range.lowerBound && range.upperBound <= count,
                     "token range \(range) out of range 0..<\(count) in \(name)")
        switch storage {
        case .ints(let ids):
            return Array(ids[range])
        case .mapped(let data, let offset, let width):
            return data.withUnsafeBytes { raw in
                range.map { i in Self.load(raw, at: offset + i * width, width: width) }
            }
        }
    }

    /// A little-endian unsigned int of `width` bytes (1, 2 or 4) at byte `at`; files give no alignment.
    @inline(__always)
    static func load(_ raw: UnsafeRawBufferPointer, at byte: Int, width: Int) -> Int {
        switch width {
        case 1: return Int(raw[byte])
        case 2: return Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: byte, as: UInt16.self)))
        default: return Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: byte, as: UInt32.self)))
        }
    }

    // MARK: Checks a user can fail

    /// Throws unless every token id is < `vocabSize`, naming the first offending id and its position.
    /// Done once, up front (the loader calls it at construction), so a wrong tokenizer or model fails
    /// before the first step rather than as an out-of-range embedding lookup hours in. It is one
    /// sequential pass over the file; byte-level data (ids < 256) skips it when vocabSize >= 256.
    public func validate(vocabSize: Int) throws {
        precondition(vocabSize > 0, "vocabSize must be positive")
        let offending: (position: Int, id: Int)?
        switch storage {
        case .ints(let ids):
            offending = ids.firstIndex { $0 < 0 || $0 >= vocabSize }.map { ($0, ids[$0]) }
        case .mapped(let data, let offset, let width):
            if vocabSize >= 1 << (8 * width) { return }   // no id of this width can reach the vocab size
            offending = data.withUnsafeBytes { raw in
                for i in 0..<count {
                    let id = Self.load(raw, at: offset + i * width, width: width)
                    if id >= vocabSize { return (i, id) }
                }
                return nil
            }
        }
        if let (position, id) = offending {
            throw TrainingError.data("\(name): token id \(id) at position \(position) is outside the model's "
                                     + "vocabulary 0..<\(vocabSize): use a model with vocab_size > \(id), or "
                                     + "tokenize the data with the model's tokenizer")
        }
    }

    /// Non-overlapping windows of T + 1 tokens (inputs plus the one-token-shifted targets) that fit.
    public func windowCount(sequenceLength: Int) -> Int {
        count / (sequenceLength + 1)
    }

    /// Throws unless each of `dataParallelSize` ranks gets at least one window of T + 1 tokens, i.e.
    /// N >= (T + 1) · dp; says how many tokens are needed and how many there are.
    public func checkLength(sequenceLength: Int, dataParallelSize: Int) throws {
        precondition(sequenceLength > 0 && dataParallelSize > 0, "sequence length and dp size must be positive")
        let needed = (sequenceLength + 1) * dataParallelSize
        guard count >= needed else {
            throw TrainingError.data("\(name) has \(count) tokens, but one window of seq_len \(sequenceLength) + 1 "
                                     + "tokens for each of \(dataParallelSize) data-parallel ranks needs \(needed): "
                                     + "use a longer corpus, a shorter seq_len or fewer dp ranks")
        }
    }
}
