// PicotronConfig+Load.swift: reading a config file, and the notes and warnings it earns.
//
// Three kinds of message, from mild to fatal:
//   note     a picotron key that means nothing on a CPU ("model.dtype \"bfloat16\": ...float32"): accepted,
//            and the note says what is done instead. Defaults never earn a note.
//   warning  an unknown key or section, named with its path and the nearest known key; it is ignored.
//   error    malformed JSON (with line:column), a value of the wrong type (with its path, the expected
//            type and the value found), or a value that breaks a rule (see +Validate.swift).
import Formats
import Foundation

extension PicotronConfig {
    /// Reads, checks and validates a picotron config file. `notes` holds one line per note
    /// (prefixed "note: ") and per warning (prefixed "warning: "), ready to print.
    /// Throws `TrainingError.config` naming the file for a missing or malformed file, a mistyped value or a
    /// broken rule. The model is not resolved here: call `resolvedModelConfig()`.
    public static func load(from url: URL) throws -> (config: PicotronConfig, notes: [String]) {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TrainingError.config("\(path): no such file. Create one with `picotron create-config --out_dir "
                                       + "<dir> --exp_name <name>` or check the path")
        }
        guard !isDirectory.boolValue else {
            throw TrainingError.config("\(path) is a directory; pass the config.json file inside it")
        }
        let data: Data
        // Through a file handle: Data(contentsOf:) refuses devices and pipes (`--config /dev/stdin`).
        do { data = try FileHandle(forReadingFrom: url).readToEnd() ?? Data() } catch {
            throw TrainingError.config("\(path): cannot read the file (\(OutputFile.describe(error)))")
        }
        let bytes = [UInt8](data)
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch let error as JSONSyntaxError {
            let (line, column) = error.location(in: bytes)
            throw TrainingError.config("\(path):\(line):\(column): malformed JSON: \(error.message)")
        }
        do {
            var warnings: [String] = []
            let config = try PicotronConfig(json: json, warnings: &warnings)
            try config.validate()
            return (config, config.notes + warnings.map { "warning: " + $0 })
        } catch TrainingError.config(let message) {
            throw TrainingError.config("\(path): \(message)")
        }
    }

    /// Decodable through the same reader as `load(from:)` (warnings are dropped; validation is not run).
    public init(from decoder: Decoder) throws {
        var warnings: [String] = []
        try self.init(json: JSONValue(from: decoder), warnings: &warnings)
    }

    /// Reads every section; unknown sections and keys become warnings, wrong types throw.
    init(json: JSONValue, warnings: inout [String]) throws {
        self.init()
        guard case .object(let members) = json else {
            throw TrainingError.config("the top level must be an object of sections "
                                       + "(distributed, model, training, ...), found \(json.summary)")
        }
        var unknown: [String] = []
        for section in Self.sections {
            guard let value = json[section.name] else { continue }
            unknown += try section.read(&self, value).map { Self.unknownKey($0, in: section) }
        }
        let sectionNames = Self.sections.map(\.name)
        for (name, _) in members where !sectionNames.contains(name) {
            let hint = closestName(to: name, in: sectionNames).map { " (did you mean \($0)?)" } ?? ""
            warnings.append("unknown section \(name)\(hint); it is ignored. Sections are "
                            + sectionNames.joined(separator: ", "))
        }
        warnings += unknown
    }

    /// The warning for a key `section` does not have, with the nearest key of the section, or the
    /// section that has it.
    private static func unknownKey(_ key: String, in section: Section) -> String {
        let path = "\(section.name).\(key)"
        if let near = closestName(to: key, in: section.keyNames) {
            return "unknown key \(path) (did you mean \(near)?); it is ignored"
        }
        if let home = sections.first(where: { $0.keyNames.contains(key) })?.name {
            return "unknown key \(path) (did you mean \(home).\(key)? it belongs in the \(home) section); "
                + "it is ignored"
        }
        return "unknown key \(path); it is ignored"
    }

    /// One line per picotron setting that this CPU implementation does differently, each saying what
    /// happens instead (the notes of the key tables). Settings at their defaults earn none.
    public var notes: [String] { Self.sections.flatMap { $0.notes(self) } }
}
