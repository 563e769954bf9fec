// Pre-tokenized token files, in the two formats the nanoGPT / llm.c world writes, so data tokenized once
// by their scripts (e.g. with GPT-2's BPE, vocab 50257) trains here as it is:
//
//   nanoGPT  train.bin: a raw array of little-endian uint16 token ids, no header (np.uint16 .tofile).
//            Nothing in the file says its dtype, so the caller must: uint16 (nanoGPT) or uint32.
//   llm.c    a 256 × int32 little-endian header, then the tokens:
//              header[0] = 20240520 (magic), header[1] = version (1: uint16 tokens, 2: uint32 tokens),
//              header[2] = token count; tokens start at byte 1024. Detected by its magic.
//
// Both are memory-mapped; TokenDataset reads a window at a time and never builds the whole [Int].
//
// Legend: N = tokens in the file, w = bytes per token (2 or 4).
// ### References
// nanoGPT data/openwebtext/prepare.py; llm.c dev/data/data_common.py (write_datafile) and
// llmc/dataloader.h (the header checks mirrored below).

import Formats
import Foundation
import Llama

/// Width of one token id in a token file.
public enum TokenDType: String, Codable, Sendable, CaseIterable {
    case uint16, uint32

    /// w, bytes per token.
    public var byteWidth: Int { self == .uint16 ? 2 : 4 }
    /// Largest vocabulary this width can address (65536 for uint16).
    public var idLimit: Int { 1 << (8 * byteWidth) }
}

/// How a token file lays out its tokens.
public enum TokenFileFormat: Sendable, Equatable {
    /// Raw little-endian ids, no header (nanoGPT's train.bin is `.raw(.uint16)`).
    case raw(TokenDType)
    /// llm.c: 1024-byte header; version 1 holds uint16 ids, version 2 uint32.
    case llmc(TokenDType)

    public var dtype: TokenDType {
        switch self { case .raw(let d), .llmc(let d): return d }
    }
}

extension TokenDataset {
    /// llm.c's header: 256 int32 values; see the file comment for the fields.
    public static let llmcMagic: Int32 = 20240520
    public static let llmcHeaderInts = 256
    static var llmcHeaderBytes: Int { llmcHeaderInts * MemoryLayout<Int32>.size }

    /// Opens a token file without copying it. An llm.c header is recognised by its magic and gives the
    /// dtype itself; a headerless (nanoGPT-style) file needs `dtype`. Throws, naming the file and the
    /// numbers, if it is missing, empty, not a whole number of tokens, or its header disagrees with its size.
    public static func tokenFile(_ url: URL, dtype: TokenDType? = nil) throws -> TokenDataset {
        let data = try mapFile(url, what: "token file")
        let path = url.path
        guard !data.isEmpty else {
            throw TrainingError.data("token file \(path) is empty (0 bytes): tokenize some data into it "
                                     + "or pass another file")
        }
        let header = data.count >= 4 ? data.withUnsafeBytes { readInt32s($0, count: min(3, data.count / 4)) } : []
        let format: TokenFileFormat
        var offset = 0
        if header.first == llmcMagic {
            guard data.count >= llmcHeaderBytes else {
                throw TrainingError.data("token file \(path) starts with llm.c's magic \(llmcMagic) but has "
                                         + "\(data.count) bytes, fewer than the \(llmcHeaderBytes)-byte header: "
                                         + "the file is truncated; write it again")
            }
            let (version, declared) = (Int(header[1]), Int(header[2]))
            guard version == 1 || version == 2 else {
                throw TrainingError.data("token file \(path) has llm.c version \(version); only 1 (uint16 tokens) "
                                         + "and 2 (uint32 tokens) exist: write it with llm.c's data_common.py")
            }
            let headerDType: TokenDType = version == 1 ? .uint16 : .uint32
            if let dtype, dtype != headerDType {
                throw TrainingError.data("token file \(path) is llm.c version \(version) (\(headerDType.rawValue) "
                                         + "tokens) but dtype \(dtype.rawValue) was given: drop the dtype (the "
                                         + "header says it) or pass \(headerDType.rawValue)")
            }
            format = .llmc(headerDType)
            offset = llmcHeaderBytes
            let payload = data.count - offset
            let width = headerDType.byteWidth
            guard payload % width == 0, payload / width == declared else {
                let held = payload % width == 0 ? "\(payload / width) tokens"
                    : "\(payload) bytes, not a whole number of tokens"
                throw TrainingError.data("token file \(path): llm.c header says \(declared) tokens, but the file "
                                         + "holds \(held) after the header (\(headerDType.rawValue), \(width) bytes "
                                         + "each): the file is truncated or was written incompletely; write it again")
            }
        } else {
            guard let dtype else {
                throw TrainingError.data("token file \(path) has no llm.c header (magic \(llmcMagic)), so its "
                                         + "token width is unknown: pass its dtype, uint16 (nanoGPT's train.bin) "
                                         + "or uint32")
            }
            guard data.count % dtype.byteWidth == 0 else {
                throw TrainingError.data("token file \(path) has \(data.count) bytes, not a multiple of "
                                         + "\(dtype.byteWidth) (the size of one \(dtype.rawValue) token): the file "
                                         + "is truncated or its dtype is not \(dtype.rawValue)")
            }
            format = .raw(dtype)
        }
        let width = format.dtype.byteWidth
        let count = (data.count - offset) / width
        guard count > 0 else {
            throw TrainingError.data("token file \(path) holds 0 tokens after its header: tokenize some data into it")
        }
        return TokenDataset(name: path, count: count, storage: .mapped(data, offset: offset, width: width))
    }

    /// Writes `tokens` as a token file in `format` (the inverse of `tokenFile`): for tests, for lessons,
    /// and for saving a byte-tokenized corpus in llm.c's format. Every id must fit the dtype.
    public static func writeTokenFile(_ tokens: [Int], to url: URL, format: TokenFileFormat) throws {
        let dtype = format.dtype
        if let bad = tokens.firstIndex(where: { $0 < 0 || $0 >= dtype.idLimit }) {
            throw TrainingError.data("cannot write \(url.path): token id \(tokens[bad]) at position \(bad) does not "
                                     + "fit \(dtype.rawValue) (0..<\(dtype.idLimit)): use uint32")
        }
        var bytes = Data()
        bytes.reserveCapacity(llmcHeaderBytes + tokens.count * dtype.byteWidth)
        func append<I: FixedWidthInteger>(_ value: I) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }
        if case .llmc = format {
            var header = [Int32](repeating: 0, count: llmcHeaderInts)
            header[0] = llmcMagic
            header[1] = dtype == .uint16 ? 1 : 2
            header[2] = Int32(tokens.count)
            header.forEach(append)
        }
        switch dtype {
        case .uint16: tokens.forEach { append(UInt16($0)) }
        case .uint32: tokens.forEach { append(UInt32($0)) }
        }
        try OutputFile.write(bytes, to: url)
    }

    static func readInt32s(_ raw: UnsafeRawBufferPointer, count: Int) -> [Int32] {
        (0..<count).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
    }
}
