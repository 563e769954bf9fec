// ModelError.swift: the one error type of model file I/O (safetensors, checkpoints, config.json),
// and the small JSON value both formats are read through.
//
// Why one error type: a user who points `picotron` at the wrong directory should read one line that
// names the file, the problem and the fix, whichever of the three readers noticed it first.
import Foundation

/// A problem with a model file: it is missing, malformed, hostile, or asks for something not supported.
///
/// `description` is one line: `<file>: <problem>. <fix>.`, for example
/// `smol/config.json: key "hidden_size": expected an integer, found the string "576". Write it as a JSON number.`
public struct ModelFileError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// What went wrong, so code can react without parsing the message.
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be opened, read or written (missing, permissions, disk full).
        case io
        /// The bytes are not a valid file: truncated, bad JSON, bad offsets, overlapping tensors.
        case malformed
        /// A valid file that asks for something this project does not implement (a dtype, rope scaling, Mistral).
        case unsupported
        /// A tensor name the file or checkpoint does not hold.
        case missingTensor
        /// A tensor read as the wrong kind, e.g. `floats` of an `I64` tensor.
        case wrongDType
        /// A config key that is missing, has the wrong JSON type, or a value that does not fit the others.
        case invalidConfig
        /// Values handed to a writer that cannot be written (shape does not match the values, duplicate names).
        case invalidArgument
    }

    public let kind: Kind
    /// The path of the file (or directory) the problem is about.
    public let file: String
    /// What is wrong, naming the value and the rule, without a final period.
    public let problem: String
    /// How to fix it, when there is something the user can do.
    public let fix: String?

    public init(_ kind: Kind, file: String, problem: String, fix: String? = nil) {
        self.kind = kind
        self.file = file
        self.problem = problem
        self.fix = fix
    }

    public var description: String {
        "\(file): \(problem)." + (fix.map { " \($0)." } ?? "")
    }

    public var errorDescription: String? { description }
}

/// A parsed JSON value. The readers walk it by hand (instead of `Decodable` structs) so every error can
/// name the exact key path, what was expected and what was found.
indirect enum ModelFileJSON: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    /// An integral number (`576`, also `576.0`); kept exact, unlike a `Double`, for byte offsets.
    case int(Int64)
    case double(Double)
    case string(String)
    case array([ModelFileJSON])
    case object([String: ModelFileJSON])

    /// Parses `data`, or returns nil when it is not JSON. Nesting depth is bounded by the decoder,
    /// so a hostile `[[[[...` throws instead of overflowing the stack.
    static func parse(_ data: Data) -> ModelFileJSON? {
        try? JSONDecoder().decode(ModelFileJSON.self, from: data)
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        // Order matters: Bool before numbers (strict in JSONDecoder), Int64 before Double (exactness).
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([ModelFileJSON].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: ModelFileJSON].self))
        }
    }

    var intValue: Int? {
        if case .int(let i) = self { return Int(exactly: i) }
        return nil
    }

    var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Strings, numbers and booleans as text (index metadata such as `"total_size": 538090408`).
    var scalarText: String? {
        switch self {
        case .string(let s): return s
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        default: return nil
        }
    }

    var objectValue: [String: ModelFileJSON]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// A short phrase for error messages: `the string "576"`, `the number 1.5`, `an array of 3 values`.
    var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .int(let i): return "the number \(i)"
        case .double(let d): return "the number \(d)"
        case .string(let s): return "the string \(quoted(s))"
        case .array(let a): return "an array of \(a.count) value" + (a.count == 1 ? "" : "s")
        case .object(let o): return "an object with \(o.count) key" + (o.count == 1 ? "" : "s")
        }
    }
}

/// `"text"`, truncated so a hostile 1 MB string cannot flood an error message.
func quoted(_ s: String, limit: Int = 80) -> String {
    s.count <= limit ? "\"\(s)\"" : "\"\(s.prefix(limit))...\""
}

/// "Did you mean" for a missing name: the names sharing the longest prefix with it, then the first ones.
func nearestNames(to name: String, in names: [String], limit: Int = 5) -> String {
    guard !names.isEmpty else { return "The file holds no tensors" }
    func shared(_ s: String) -> Int { zip(s, name).prefix { $0 == $1 }.count }
    let ranked = names.enumerated().sorted { (shared($0.element), -$0.offset) > (shared($1.element), -$1.offset) }
    let label = shared(ranked[0].element) > 0 ? "Nearest names" : "Names in the file include"
    let picks = ranked.prefix(limit).map { quoted($0.element) }
    return "\(label): " + picks.joined(separator: ", ") + (names.count > limit ? ", ..." : "")
}
