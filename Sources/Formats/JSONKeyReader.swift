// JSONKeyReader.swift: typed reading of the keys of one JSON object, so every mistake names its key path.
//
// Both configs of this project read through it: Hugging Face's config.json (LlamaConfig) and each
// section of picotron's config (PicotronConfig). Absent keys and `null` mean "keep the default"; a
// present value of the wrong JSON type is a `JSONKeyError` naming the key path, the type expected and
// the value found, never a silent default. Each caller words that error its own way: a
// `ModelFileError` naming the file for config.json, picotron's `section.key: ...` for its config.
import Foundation

/// A JSON value a config key can hold, and the phrase an error uses for it.
public protocol JSONScalar {
    /// What an error says was expected: "an integer", "a number", "a string", "true or false".
    static var expected: String { get }
    /// The value, or nil when `json` is not of this type.
    init?(json: JSONValue)
}

extension Int: JSONScalar {
    public static var expected: String { "an integer" }
    /// An integral literal only (`4`, not `4.0`); `JSONKeyReader.wholeNumbersAreIntegers` relaxes that.
    public init?(json: JSONValue) {
        guard case .int(let i) = json else { return nil }
        self = i
    }
}

extension Double: JSONScalar {
    public static var expected: String { "a number" }
    /// Any number: `1` and `1.0` alike.
    public init?(json: JSONValue) {
        guard let d = json.doubleValue else { return nil }
        self = d
    }
}

extension String: JSONScalar {
    public static var expected: String { "a string" }
    public init?(json: JSONValue) {
        guard case .string(let s) = json else { return nil }
        self = s
    }
}

extension Bool: JSONScalar {
    public static var expected: String { "true or false" }
    public init?(json: JSONValue) {
        guard case .bool(let b) = json else { return nil }
        self = b
    }
}

/// A key whose value has the wrong JSON type: `training.seq_length: expected an integer, found the number 4.5`.
public struct JSONKeyError: Error, Equatable, CustomStringConvertible {
    /// The key path, parts joined by dots: `training.seq_length`, `rope_parameters.rope_theta`.
    public let path: String
    /// The phrase of the type expected: "an integer", "an object or null".
    public let expected: String
    /// The value the file holds.
    public let found: JSONValue

    public init(path: String, expected: String, found: JSONValue) {
        (self.path, self.expected, self.found) = (path, expected, found)
    }

    public var description: String { "\(path): expected \(expected), found \(found.summary)" }
}

/// The members of one JSON object, read by key with their types checked.
public struct JSONKeyReader {
    /// The object's own key path (`training`), or nil at the top level; errors prefix it to each key.
    public let path: String?
    /// The members in file order. A key given twice counts with its last value.
    public let members: [(key: String, value: JSONValue)]
    /// Accept a whole number with a zero fraction (`4.0`) as an integer. picotron's configs do;
    /// config.json does not (transformers would keep `4.0` a float and fail later).
    public let wholeNumbersAreIntegers: Bool

    /// The members of `json`, an object, or null for none. `expected` is what an error calls an object.
    public init(_ json: JSONValue, path: String? = nil, expected: String = "an object",
                wholeNumbersAreIntegers: Bool = false) throws {
        switch json {
        case .object(let m): members = m
        case .null: members = []
        default: throw JSONKeyError(path: path ?? "the top level", expected: expected, found: json)
        }
        (self.path, self.wholeNumbersAreIntegers) = (path, wholeNumbersAreIntegers)
    }

    /// `key`'s path for messages: `training.seq_length`.
    public func path(of key: String) -> String { path.map { "\($0).\(key)" } ?? key }

    /// The value of `key` (the last one when repeated), or nil when it is absent or null.
    public func value(_ key: String) -> JSONValue? {
        guard let v = members.last(where: { $0.key == key })?.value, v != .null else { return nil }
        return v
    }

    /// The value of `key` as a `T`, nil when absent or null; throws when it is of another type.
    public func read<T: JSONScalar>(_ key: String, as: T.Type = T.self) throws -> T? {
        guard let json = value(key) else { return nil }
        return try convert(json, key)
    }

    /// Replaces `value` with the file's one when it is present and not null.
    public func read<T: JSONScalar>(_ key: String, into value: inout T) throws {
        if let v: T = try read(key) { value = v }
    }

    /// For optional keys: present → the value, `null` → nil, absent → unchanged (picotron writes
    /// `"max_tokens": null` to mean none).
    public func read<T: JSONScalar>(_ key: String, into value: inout T?) throws {
        guard let member = members.last(where: { $0.key == key }) else { return }
        value = member.value == .null ? nil : try convert(member.value, key) as T
    }

    /// The object at `key` as a reader of its own, nil when absent or null; throws when it is not an object.
    public func object(_ key: String, expected: String = "an object") throws -> JSONKeyReader? {
        guard let json = value(key) else { return nil }
        return try JSONKeyReader(json, path: path(of: key), expected: expected,
                                 wholeNumbersAreIntegers: wholeNumbersAreIntegers)
    }

    /// The keys in the file that are not among `known`, in file order, each once.
    public func unknownKeys(known: [String]) -> [String] {
        let known = Set(known)
        var seen = Set<String>()
        return members.map(\.key).filter { !known.contains($0) && seen.insert($0).inserted }
    }

    private func convert<T: JSONScalar>(_ json: JSONValue, _ key: String) throws -> T {
        if let v = T(json: json) { return v }
        if wholeNumbersAreIntegers, case .double(let d) = json, let i = Int(exactly: d), let v = T(json: .int(i)) {
            return v
        }
        throw JSONKeyError(path: path(of: key), expected: T.expected, found: json)
    }
}

// MARK: "Did you mean"

/// The closest of `candidates` to `name` by edit distance (ignoring case), if close enough to be a
/// likely typo: at most 2 edits, or a third of the name's length for longer names.
public func closestName(to name: String, in candidates: [String]) -> String? {
    let lower = name.lowercased()
    let scored = candidates.map { ($0, editDistance(lower, $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, lower.count / 3) ? best.0 : nil
}

/// Levenshtein distance (insertions, deletions, substitutions), two rows at a time.
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
