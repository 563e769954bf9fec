// The simplest tokenizer that can train a language model on any text: one token per UTF-8 byte.
// No vocabulary file to ship, no merges to learn, every string round-trips, and the embedding table
// has 256 rows, so a tiny Llama trains on a laptop. The price is ~4× longer sequences than a BPE
// tokenizer on English. nanoGPT's shakespeare_char uses characters for the same reason.
//
// Legend: N = bytes (tokens) in the text.

/// Byte-level tokenizer: token id = UTF-8 byte value, vocabulary 0..<256.
public struct ByteTokenizer: Sendable, Equatable {
    /// 256: every byte value is a token, so no input is ever out of vocabulary.
    public static let vocabSize = 256
    public var vocabSize: Int { Self.vocabSize }

    public init() {}

    /// The UTF-8 bytes of `text` as token ids. `[N]`, each in 0..<256.
    /// Because ids are bytes, a byte-tokenized file is just the file: `TokenDataset.textFile` maps it
    /// as it is and gets the same ids this returns for the file's text.
    public func encode(_ text: String) -> [Int] {
        text.utf8.map { Int($0) }
    }

    /// The text of `ids`, decoding UTF-8 leniently: a sequence cut in the middle of a multi-byte
    /// character (as a model sampling one byte at a time produces) or an id outside 0..<256 (from a
    /// model with a larger vocabulary) becomes U+FFFD "�" instead of trapping. Generation streams
    /// arbitrary ids through here, so it must never crash.
    public func decode(_ ids: [Int]) -> String {
        var out = ""
        var pending: [UInt8] = []   // a run of in-range bytes, decoded together so multi-byte chars join
        pending.reserveCapacity(ids.count)
        for id in ids {
            if (0..<256).contains(id) {
                pending.append(UInt8(id))
            } else {
                out += String(decoding: pending, as: UTF8.self)   // lossy: invalid bytes → U+FFFD
                pending.removeAll(keepingCapacity: true)
                out += "\u{FFFD}"
            }
        }
        return out + String(decoding: pending, as: UTF8.self)
    }
}
