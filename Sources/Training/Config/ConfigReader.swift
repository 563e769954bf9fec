// ConfigReader.swift: typed reading of one config section, so every mistake names its key path.
//
// A section's `CodingKeys` is the one place its key spellings live: the reader reads through it, the
// encoder writes through it, and any key in the file that is not one of its cases is reported as unknown.
//
// Absent keys and `null` keep the default, except for optional keys where `null` means "none" (picotron
// writes `"max_tokens": null`). A present value of the wrong JSON type is an error, never a silent default.
import Formats
import Foundation
import Llama

/// A JSON scalar a config key can hold, and the phrase an error uses for it.
protocol ConfigScalar {
    static var expected: String { get }
    init?(json: JSONValue)
}

extension Int: ConfigScalar {
    static var expected: String { "an integer" }
    init?(json: JSONValue) {
        switch json {
        case .int(let i): self = i
        case .double(let d): guard let i = Int(exactly: d) else { return nil }; self = i   // 4.0 is 4
        default: return nil
        }
    }
}

extension Double: ConfigScalar {
    static var expected: String { "a number" }
    init?(json: JSONValue) {
        switch json {
        case .int(let i): self = Double(i)
        case .double(let d): self = d
        default: return nil
        }
    }
}

extension String: ConfigScalar {
    static var expected: String { "a string" }
    init?(json: JSONValue) {
        guard case .string(let s) = json else { return nil }
        self = s
    }
}

extension Bool: ConfigScalar {
    static var expected: String { "true or false" }
    init?(json: JSONValue) {
        guard case .bool(let b) = json else { return nil }
        self = b
    }
}

/// The members of one section (`training`, ...) read through the section's `CodingKeys`.
struct ConfigReader<Key: CodingKey & CaseIterable> {
    /// The section's name, the first part of every key path in a message.
    let section: String
    let members: [(key: String, value: JSONValue)]

    /// Reads a section; `json` must be an object (or null: an empty section).
    init(section: String, json: JSONValue) throws {
        self.section = section
        switch json {
        case .object(let m): members = m
        case .null: members = []
        default: throw TrainingError.config("\(section): expected an object of keys, found \(json.summary)")
        }
    }

    private func present(_ key: Key) -> JSONValue? {
        members.last { $0.key == key.stringValue }?.value
    }

    /// Replaces `value` with the file's one when it is present and not null.
    func read<T: ConfigScalar>(_ key: Key, _ value: inout T) throws {
        guard let json = present(key), !isNull(json) else { return }
        value = try convert(json, key)
    }

    /// Optional keys: present → the value, `null` → nil, absent → unchanged.
    func read<T: ConfigScalar>(_ key: Key, _ value: inout T?) throws {
        guard let json = present(key) else { return }
        value = isNull(json) ? nil : try convert(json, key)
    }

    private func isNull(_ json: JSONValue) -> Bool {
        if case .null = json { return true }
        return false
    }

    private func convert<T: ConfigScalar>(_ json: JSONValue, _ key: Key) throws -> T {
        guard let v = T(json: json) else {
            throw TrainingError.config("\(section).\(key.stringValue): expected \(T.expected), found \(json.summary)")
        }
        return v
    }

    /// Keys in the file that are not this section's, in file order, each once.
    var unknownKeys: [String] {
        let known = Set(Key.allCases.map(\.stringValue))
        var seen = Set<String>()
        return members.map(\.key).filter { !known.contains($0) && seen.insert($0).inserted }
    }
}

// MARK: "Did you mean"

/// The closest of `candidates` to `name` by edit distance, if close enough to be a likely typo.
func closestName(to name: String, in candidates: [String]) -> String? {
    let lower = name.lowercased()
    let scored = candidates.map { ($0, editDistance(lower, $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, lower.count / 3) ? best.0 : nil
}

/// Levenshtein distance (insertions, deletions, substitutions), two rows at a time.
func editDistance(_ a: String, _ b: String) -> Int {
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
