// JSONValue.swift: the one JSON value every reader walks (config.json, safetensors headers and
// indexes, picotron configs). JSONParser.swift makes it from bytes; JSONKeyReader.swift reads an
// object's keys with their types checked.
//
// Why not Foundation's `Any` trees or `Codable` structs: a reader must tell which keys were present,
// keep them in file order for its warnings, and name a mistyped value ("found the string \"4\"").
import Foundation

/// A JSON value. Objects made by `JSONParser` keep their members in file order (a repeated key is
/// kept, and its last value counts); objects decoded through a `Decoder` come sorted by key (see
/// `init(from:)`).
public indirect enum JSONValue: Sendable, Codable, Equatable {
    case null
    case bool(Bool)
    /// An integral literal without fraction or exponent that fits an `Int` (`4`, not `4.0` or `4e0`).
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// The value of `key` in an object (the last one when repeated), or nil.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }

    /// A short phrase for error messages: `the string "4"`, `the number 1.5`, `an object with 3 keys`.
    public var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .int(let i): return "the number \(i)"
        case .double(let d): return "the number \(d)"
        case .string(let s): return "the string " + quoted(s)
        case .array(let a): return "an array of \(a.count) value" + (a.count == 1 ? "" : "s")
        case .object(let o): return "an object with \(o.count) key" + (o.count == 1 ? "" : "s")
        }
    }

    /// Through any `Decoder` (so `JSONDecoder().decode(PicotronConfig.self, ...)` works too), with
    /// what a decoder can tell. An object's members come sorted by key: a `Decoder` does not keep the
    /// file's order (Foundation's JSONDecoder hands keys over from a hash table, in an order that
    /// changes from one run to the next) and has already kept one value of a repeated key (Foundation's
    /// keeps the first), so sorting is what makes a decoded value the same on every run.
    /// `JSONParser.parse` keeps the file's order, and the last value of a repeated key.
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        // Order matters: Bool before numbers, Int before Double (exactness).
        if c.decodeNil() { self = .null
        } else if let b = try? c.decode(Bool.self) { self = .bool(b)
        } else if let i = try? c.decode(Int.self) { self = .int(i)
        } else if let d = try? c.decode(Double.self) { self = .double(d)
        } else if let s = try? c.decode(String.self) { self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) { self = .array(a)
        } else {
            let members = try c.decode([String: JSONValue].self).sorted { $0.key < $1.key }
            self = .object(members.map { ($0.key, $0.value) })
        }
    }

    /// Through any `Encoder`: an object's members in their order, a repeated key once with its last value.
    public func encode(to encoder: Encoder) throws {
        switch self {
        case .array(let values):
            var c = encoder.unkeyedContainer()
            for v in values { try c.encode(v) }
        case .object(let members):
            var c = encoder.container(keyedBy: JSONKey.self)
            var last: [String: Int] = [:]
            for (i, m) in members.enumerated() { last[m.key] = i }
            for (i, m) in members.enumerated() where last[m.key] == i {
                try c.encode(m.value, forKey: JSONKey(stringValue: m.key))
            }
        default:
            var c = encoder.singleValueContainer()
            switch self {
            case .bool(let b): try c.encode(b)
            case .int(let i): try c.encode(i)
            case .double(let d): try c.encode(d)
            case .string(let s): try c.encode(s)
            default: try c.encodeNil()
            }
        }
    }
}

extension JSONValue {
    /// Parses `data`, or returns nil when it is not JSON (the readers that only need yes or no).
    static func parse(_ data: Data) -> JSONValue? { try? JSONParser.parse([UInt8](data)) }

    /// An object's members by key (the last one wins when a key repeats).
    public var objectValue: [String: JSONValue]? {
        guard case .object(let members) = self else { return nil }
        return Dictionary(members, uniquingKeysWith: { _, last in last })
    }

    public var intValue: Int? {
        if case .int(let i) = self { return i }
        return nil
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Strings, numbers and booleans as text (index metadata such as `"total_size": 538090408`).
    public var scalarText: String? {
        switch self {
        case .string(let s): return s
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        default: return nil
        }
    }

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }
}

/// A coding key spelled as a string literal, for the many snake_case keys of JSON files.
public struct JSONKey: CodingKey, ExpressibleByStringLiteral, Sendable {
    public let stringValue: String
    public var intValue: Int? { nil }
    public init(stringValue: String) { self.stringValue = stringValue }
    public init(stringLiteral value: String) { stringValue = value }
    public init?(intValue: Int) { nil }
}
