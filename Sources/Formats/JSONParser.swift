// JSONParser.swift: RFC 8259 JSON from bytes to a `JSONValue`, with the line and column of the first
// syntax error.
//
// Why our own parser: Foundation's JSONDecoder on Linux says only "The given data was not valid JSON",
// without a line or a column, and it forgets the order of an object's members. This one keeps member
// order and duplicates, and says where and what: "expected ',' or '}' after the value of \"seed\"".
import Foundation

/// A syntax error at a byte offset; `location(in:)` turns the offset into 1-based line and column.
public struct JSONSyntaxError: Error {
    /// What was expected and found, without the position: "unterminated string (missing closing '\"')".
    public let message: String
    /// The byte offset of the problem in the parsed bytes.
    public let offset: Int

    /// The 1-based line and column of `offset` in `bytes` (the bytes that were parsed).
    public func location(in bytes: [UInt8]) -> (line: Int, column: Int) {
        let before = bytes.prefix(offset)
        let line = before.reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        let column = offset - (before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
        return (line, column)
    }
}

/// A recursive-descent parser of RFC 8259 JSON (no comments, no trailing commas), depth-limited.
public struct JSONParser {
    private let b: [UInt8]
    private var i = 0
    private var depth = 0
    private static let maxDepth = 64

    /// The value `bytes` hold; throws `JSONSyntaxError` at the first mistake (an empty input is one).
    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        var p = JSONParser(b: bytes)
        p.skipSpace()
        guard p.i < bytes.count else { throw JSONSyntaxError(message: "the file is empty", offset: 0) }
        let value = try p.value()
        p.skipSpace()
        guard p.i == bytes.count else { throw p.fail("unexpected text after the closing of the top-level value") }
        return value
    }

    private init(b: [UInt8]) { self.b = b }

    private func fail(_ message: String) -> JSONSyntaxError { JSONSyntaxError(message: message, offset: i) }

    private var found: String {
        guard i < b.count else { return "the end of the file" }
        let c = b[i]
        return (32..<127).contains(c) ? "'\(Character(UnicodeScalar(c)))'" : "byte 0x" + String(c, radix: 16)
    }

    private mutating func skipSpace() {
        while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 }
    }

    private mutating func expect(_ c: Character, _ context: String) throws {
        skipSpace()
        guard i < b.count, b[i] == c.asciiValue! else { throw fail("expected '\(c)' \(context), found \(found)") }
        i += 1
    }

    private mutating func value() throws -> JSONValue {
        skipSpace()
        guard i < b.count else { throw fail("expected a value, found the end of the file") }
        switch b[i] {
        case UInt8(ascii: "{"): return try nested { try $0.object() }
        case UInt8(ascii: "["): return try nested { try $0.array() }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try word("true"); return .bool(true)
        case UInt8(ascii: "f"): try word("false"); return .bool(false)
        case UInt8(ascii: "n"): try word("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default:
            let c = Character(UnicodeScalar(b[i]))
            let hint = c == "'" ? " (JSON strings use double quotes)"
                : "TFN".contains(c) ? " (true, false and null are lower case)"
                : c.isLetter ? " (a string needs double quotes)" : ""
            throw fail("expected a value, found \(found)\(hint)")
        }
    }

    private mutating func nested(_ body: (inout JSONParser) throws -> JSONValue) throws -> JSONValue {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth) levels") }
        return try body(&self)
    }

    private mutating func object() throws -> JSONValue {
        i += 1  // {
        var members: [(key: String, value: JSONValue)] = []
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else {
                let trailing = b[i...].first == UInt8(ascii: "}") && !members.isEmpty ? " (a trailing comma?)" : ""
                throw fail("expected a key in double quotes, found \(found)\(trailing)")
            }
            let key = try string()
            try expect(":", "after the key \"\(key)\"")
            members.append((key, try value()))
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ",") || b[i] == UInt8(ascii: "}") else {
                throw fail("expected ',' or '}' after the value of \"\(key)\", found \(found)")
            }
            i += 1
            if b[i - 1] == UInt8(ascii: "}") { return .object(members) }
        }
    }

    private mutating func array() throws -> JSONValue {
        i += 1  // [
        var values: [JSONValue] = []
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(values) }
        while true {
            values.append(try value())
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ",") || b[i] == UInt8(ascii: "]") else {
                throw fail("expected ',' or ']' in an array, found \(found)")
            }
            i += 1
            if b[i - 1] == UInt8(ascii: "]") { return .array(values) }
        }
    }

    private mutating func word(_ w: String) throws {
        let bytes = Array(w.utf8)
        guard b.count - i >= bytes.count, Array(b[i..<(i + bytes.count)]) == bytes else {
            throw fail("expected a value, found \(found) (true, false and null are lower case)")
        }
        i += bytes.count
    }

    private mutating func number() throws -> JSONValue {
        let start = i
        func digits() -> Int { let s = i; while i < b.count, (48...57).contains(b[i]) { i += 1 }; return i - s }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard digits() > 0 else { throw fail("expected a digit, found \(found)") }
        var integral = true
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1; integral = false
            guard digits() > 0 else { throw fail("expected a digit after '.', found \(found)") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1; integral = false
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("expected a digit in the exponent, found \(found)") }
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        if integral, let n = Int(text) { return .int(n) }
        guard let d = Double(text), d.isFinite else {
            throw JSONSyntaxError(message: "number \(text) is out of range", offset: start)
        }
        return .double(d)
    }

    private mutating func string() throws -> String {
        i += 1  // opening quote
        var out = [UInt8]()
        while true {
            guard i < b.count else { throw fail("unterminated string (missing closing '\"')") }
            let c = b[i]
            i += 1
            switch c {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): out += Array(String(try unicodeEscape()).utf8)
                default: i -= 1; throw fail("invalid escape '\\\(Character(UnicodeScalar(e)))' in a string")
                }
            case 0..<0x20: i -= 1; throw fail("control character in a string (write it as an escape such as \\n)")
            default: out.append(c)
            }
        }
    }

    /// `\uXXXX`, joining a UTF-16 surrogate pair; a lone surrogate becomes U+FFFD.
    private mutating func unicodeEscape() throws -> Character {
        func hex4() throws -> UInt32 {
            guard b.count - i >= 4, let v = UInt32(String(decoding: b[i..<(i + 4)], as: UTF8.self), radix: 16) else {
                throw fail("expected four hex digits after \\u")
            }
            i += 4
            return v
        }
        let high = try hex4()
        let pairFollows = b.count - i >= 6 && b[i] == UInt8(ascii: "\\") && b[i + 1] == UInt8(ascii: "u")
        if (0xD800..<0xDC00).contains(high), pairFollows {
            i += 2
            let low = try hex4()
            if (0xDC00..<0xE000).contains(low) {
                return Character(UnicodeScalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))!)
            }
        }
        return Character(UnicodeScalar(high) ?? "\u{FFFD}")
    }
}
