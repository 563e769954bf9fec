// ModelError.swift: the one error type of model file I/O (safetensors, checkpoints, config.json).
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

/// `"text"`, truncated so a hostile 1 MB string cannot flood an error message.
public func quoted(_ s: String, limit: Int = 80) -> String {
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
