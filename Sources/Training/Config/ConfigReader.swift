// ConfigReader.swift: typed reading of one config section, so every mistake names its key path.
//
// The keys are read by Formats' `JSONKeyReader`; a section's `CodingKeys` is the one place its key
// spellings live: the reader reads through it, the encoder writes through it, and any key in the file
// that is not one of its cases is reported as unknown.
//
// Absent keys and `null` keep the default, except for optional keys where `null` means "none" (picotron
// writes `"max_tokens": null`). A present value of the wrong JSON type is an error, never a silent default.
import Formats
import Foundation
import Llama

/// The members of one section (`training`, ...) read through the section's `CodingKeys`.
struct ConfigReader<Key: CodingKey & CaseIterable> {
    let keys: JSONKeyReader

    /// Reads a section; `json` must be an object (or null: an empty section).
    init(section: String, json: JSONValue) throws {
        keys = try Self.config { try JSONKeyReader(json, path: section, expected: "an object of keys",
                                                   wholeNumbersAreIntegers: true) }
    }

    /// Replaces `value` with the file's one when it is present and not null.
    func read<T: JSONScalar>(_ key: Key, _ value: inout T) throws {
        try Self.config { try keys.read(key.stringValue, into: &value) }
    }

    /// Optional keys: present → the value, `null` → nil, absent → unchanged.
    func read<T: JSONScalar>(_ key: Key, _ value: inout T?) throws {
        try Self.config { try keys.read(key.stringValue, into: &value) }
    }

    /// Keys in the file that are not this section's, in file order, each once.
    var unknownKeys: [String] { keys.unknownKeys(known: Key.allCases.map(\.stringValue)) }

    /// A mistyped value as picotron's config error: `training.seq_length: expected an integer, found ...`.
    private static func config<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as JSONKeyError { throw TrainingError.config(error.description) }
    }
}
