// ConfigKey.swift: one key of picotron's config, written once, and what its table drives.
//
// A section (`PicotronConfig.Distributed`, ...) holds one property per key, its default beside it,
// and a table of `ConfigKey`s: the JSON name, the key path of the property (which gives the Swift
// type), the help text, whether the key is one of our extensions, and the note it earns when this
// CPU implementation does something else. From that one table come reading (types checked by
// Formats' JSONKeyReader), writing (create-config's JSON), unknown-key warnings with "did you mean"
// (PicotronConfig+Load.swift), the notes, and the key reference.
import Formats
import Foundation

/// A section of picotron's config: its JSON name, its keys, and its defaults (`init()`).
/// Decoding and encoding go through the keys (absent keys keep their defaults).
public protocol PicotronConfigSection: Codable, Sendable, Equatable {
    /// The section's JSON name: `distributed`.
    static var name: String { get }
    /// The section's keys, in the order they are read, noted and listed.
    static var keys: [ConfigKey<Self>] { get }
    /// Every key at its default.
    init()
}

/// One key of a section: what the reference lists, and how it is read, written and noted.
public struct ConfigKey<Section>: Sendable {
    /// The JSON name: `tp_size`.
    public let name: String
    /// What the key means here, for the key reference.
    public let help: String
    /// One of this project's keys, not picotron's (picotron ignores it).
    public let isExtension: Bool
    /// The JSON type: "an integer", "a string or null".
    public let type: String
    let read: @Sendable (inout Section, JSONKeyReader) throws -> Void
    /// The value to write; nil leaves the key out of the file.
    let write: @Sendable (Section) -> JSONValue?
    /// The note this value earns, if any: the value as shown, and what happens instead.
    let note: @Sendable (Section) -> (shown: String, instead: String)?
}

/// What a note says happens instead; `shown` replaces the value as the file spells it (a secret).
struct ConfigNote {
    let instead: String
    var shown: String?
    init(_ instead: String, shown: String? = nil) { (self.instead, self.shown) = (instead, shown) }
}

/// A value a key can hold, written back as JSON and shown in notes as the file spells it.
protocol ConfigScalar: JSONScalar, Sendable {
    var json: JSONValue { get }
}

extension Int: ConfigScalar { var json: JSONValue { .int(self) } }
extension Double: ConfigScalar { var json: JSONValue { .double(self) } }
extension Bool: ConfigScalar { var json: JSONValue { .bool(self) } }
extension String: ConfigScalar { var json: JSONValue { .string(self) } }

extension ConfigKey {
    /// A key that always has a value: absent or null in a file keeps the default.
    init<V: ConfigScalar>(_ name: String, _ path: WritableKeyPath<Section, V> & Sendable, _ help: String,
                          extension isExtension: Bool = false,
                          note: (@Sendable (V, Section) -> ConfigNote?)? = nil) {
        self.init(name: name, help: help, isExtension: isExtension, type: V.expected,
                  read: { try $1.read(name, into: &$0[keyPath: path]) },
                  write: { $0[keyPath: path].json },
                  note: { section in
                      let value = section[keyPath: path]
                      return note?(value, section).map { ($0.shown ?? shown(value.json), $0.instead) }
                  })
    }

    /// An optional key: `null` in a file means none. Unset, it is written as null when `writesNull`
    /// (picotron reads the key directly and needs it there), and left out otherwise. The note, if
    /// any, is asked only of a set value.
    init<V: ConfigScalar>(_ name: String, _ path: WritableKeyPath<Section, V?> & Sendable, _ help: String,
                          extension isExtension: Bool = false, writesNull: Bool = false,
                          note: (@Sendable (V, Section) -> ConfigNote?)? = nil) {
        self.init(name: name, help: help, isExtension: isExtension, type: V.expected + " or null",
                  read: { try $1.read(name, into: &$0[keyPath: path]) },
                  write: { $0[keyPath: path].map(\.json) ?? (writesNull ? .null : nil) },
                  note: { section in
                      guard let value = section[keyPath: path] else { return nil }
                      return note?(value, section).map { ($0.shown ?? shown(value.json), $0.instead) }
                  })
    }
}

/// A value as a config file spells it: `4`, `true`, `"bfloat16"`, `null`.
func shown(_ json: JSONValue) -> String {
    switch json {
    case .string(let s): return quoted(s)
    case .int(let i): return "\(i)"
    case .double(let d): return "\(d)"
    case .bool(let b): return "\(b)"
    default: return "null"
    }
}

extension PicotronConfigSection {
    /// Reads the keys `json` (an object, or null for none) holds over the current values; returns the
    /// keys it does not know, in file order. A mistyped value throws `TrainingError.config` naming its path.
    mutating func read(_ json: JSONValue) throws -> [String] {
        do {
            let reader = try JSONKeyReader(json, path: Self.name, expected: "an object of keys",
                                           wholeNumbersAreIntegers: true)
            for key in Self.keys { try key.read(&self, reader) }
            return reader.unknownKeys(known: Self.keys.map(\.name))
        } catch let error as JSONKeyError {
            throw TrainingError.config(error.description)
        }
    }

    /// The section as written: its keys in table order, unset optional ones as `writesNull` says.
    var json: JSONValue { .object(Self.keys.compactMap { key in key.write(self).map { (key.name, $0) } }) }

    /// One line per value this CPU implementation treats differently: `note: model.dtype "bfloat16": ...`.
    var notes: [String] {
        Self.keys.compactMap { key in
            key.note(self).map { "note: \(Self.name).\(key.name) \($0.shown): \($0.instead)" }
        }
    }

    /// One line per key: `distributed.tp_size (an integer, default 1): Tensor-parallel ranks: ...`.
    static var reference: [String] {
        let defaults = Self()
        return keys.map { key in
            let value = key.write(defaults).map(shown) ?? "unset"
            let origin = key.isExtension ? "; not in picotron" : ""
            return "\(name).\(key.name) (\(key.type), default \(value)\(origin)): \(key.help)"
        }
    }

    /// Through the same reader as `PicotronConfig.load(from:)`; unknown keys are ignored silently.
    public init(from decoder: Decoder) throws {
        self.init()
        _ = try read(JSONValue(from: decoder))
    }

    /// The keys as `json` writes them.
    public func encode(to encoder: Encoder) throws { try json.encode(to: encoder) }
}
