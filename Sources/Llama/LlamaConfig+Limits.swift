// LlamaConfig+Limits.swift: how large each size may be, and the divisors an error message suggests.
//
// Why limits at all: sizes multiply (hidden² · layers, vocab · hidden), and an Int product that
// overflows traps instead of saying what is wrong. Each limit is far above any published Llama
// (Llama-3-405B: hidden 16384, 126 layers, 128 heads, vocabulary 128256), so no real model meets
// one; a size above it is a typo or a test of the program, and gets a message instead of a trap.
// The parameter count is then checked in Double before any Int arithmetic multiplies the sizes.

import Formats
import Foundation

extension LlamaConfig {
    /// The largest value each size key may take, and why.
    public static let sizeLimits: [(key: String, limit: Int, why: String)] = [
        ("vocab_size", 1 << 32, "token ids are stored in at most 32 bits"),
        ("hidden_size", 1 << 24, "1024 times Llama-3-405B's 16384"),
        ("intermediate_size", 1 << 26, "1024 times Llama-3-405B's 53248, rounded up"),
        ("num_hidden_layers", 1 << 16, "500 times Llama-3-405B's 126"),
        ("num_attention_heads", 1 << 16, "500 times Llama-3-405B's 128"),
        ("num_key_value_heads", 1 << 16, "as num_attention_heads"),
        ("head_dim", 1 << 24, "as hidden_size"),
        ("max_position_embeddings", 1 << 24, "16 Mi positions, beyond any released Llama"),
    ]

    /// The most parameters a config may describe: 2^56 (about 7.2e16, 288 PB of float32), so that
    /// every Int product in `parameterCount` and every tensor's byte count stays below 2^63. (Far
    /// smaller models are refused by the memory estimate of `picotron train`, with its numbers.)
    public static let maxParameterCount = 1 << 56

    /// The limit of `key` (a config.json key), if it has one.
    public static func sizeLimit(of key: String) -> (limit: Int, why: String)? {
        sizeLimits.first { $0.key == key }.map { ($0.limit, $0.why) }
    }

    /// The parameter count in Double: the same formula as `parameterCount`, safe for any sizes.
    public var approximateParameterCount: Double {
        let (c, q, kv, i) = (Double(hiddenSize), Double(numAttentionHeads) * Double(headDim),
                             Double(numKeyValueHeads) * Double(headDim), Double(intermediateSize))
        let perLayer = 2 * c * q + 2 * c * kv + 3 * c * i + 2 * c
        return Double(vocabSize) * c * (tieWordEmbeddings ? 1 : 2) + Double(numHiddenLayers) * perLayer + c
    }

    /// Throws unless every size is within `sizeLimits` and the parameter count within
    /// `maxParameterCount`. `validate(source:)` calls it before it does any arithmetic on the sizes.
    func checkLimits(source: String) throws {
        let values: [String: Int] = [
            "vocab_size": vocabSize, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
            "num_hidden_layers": numHiddenLayers, "num_attention_heads": numAttentionHeads,
            "num_key_value_heads": numKeyValueHeads, "head_dim": headDim,
            "max_position_embeddings": maxPositionEmbeddings,
        ]
        for (key, limit, why) in Self.sizeLimits {
            guard let value = values[key], value > limit else { continue }
            throw ModelFileError(.invalidConfig, file: source,
                                 problem: "key \"\(key)\": \(value) is above this implementation's limit of "
                                     + "\(limit) (\(why))", fix: "Choose \(limit) or less")
        }
        let count = approximateParameterCount
        guard count <= Double(Self.maxParameterCount) else {
            throw ModelFileError(.invalidConfig, file: source,
                                 problem: "these sizes make about \(String(format: "%.2g", count)) parameters, "
                                     + "above the limit of 2^56 (about 7.2e16)",
                                 fix: "Choose fewer layers or a smaller hidden_size, intermediate_size or vocab_size")
        }
    }
}

/// The divisors of `n`, ascending; when there are more than `limit`, the `limit` nearest to `near`
/// (ties to the smaller). What error messages suggest: "choose num_attention_heads among 1, 2, 4, 8".
public func divisors(of n: Int, near: Int = 1, limit: Int = 12) -> [Int] {
    nearest(allDivisors(of: n), to: near, limit: limit)
}

/// `divisors(of:near:limit:)` as a comma-separated list, saying when it shows only the nearest.
public func divisorList(of n: Int, near: Int = 1, limit: Int = 12) -> String {
    let all = allDivisors(of: n)
    let list = nearest(all, to: near, limit: limit).map(String.init).joined(separator: ", ")
    return all.count > limit ? "\(list) (the \(limit) of its \(all.count) divisors nearest \(near))" : list
}

/// Every divisor of `n`, ascending. O(√n): divisors come in pairs d · (n / d) with d ≤ √n, so the
/// loop stops at √n (10⁶ steps for n = 10¹²) instead of trying every number up to n. Still 3·10⁹
/// steps for n near Int.max: callers pass sizes already checked against `sizeLimits` (at most 2³²).
private func allDivisors(of n: Int) -> [Int] {
    guard n >= 1 else { return [] }
    var small: [Int] = [], large: [Int] = []
    var d = 1
    while d <= n / d {
        if n % d == 0 {
            small.append(d)
            if d != n / d { large.append(n / d) }
        }
        d += 1
    }
    return small + large.reversed()
}

/// The `limit` values nearest `target`, ascending. Distances in Double: |d − target| cannot
/// overflow there, whatever the values.
private func nearest(_ values: [Int], to target: Int, limit: Int) -> [Int] {
    guard values.count > limit else { return values }
    let distance = { (v: Int) in abs(Double(v) - Double(target)) }
    return values.sorted { (distance($0), $0) < (distance($1), $1) }.prefix(max(0, limit)).sorted()
}
