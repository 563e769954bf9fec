// JSONValue: the parser keeps an object's members in file order (and repeated keys), decoding through
// a Decoder gives the same members sorted by key on every run, and encoding writes what was parsed.
import Formats
import Foundation
import XCTest

final class JSONValueTests: XCTestCase {
    static let text = #"{"zeta": 1, "b": [2.5, "x", true, null], "alpha": {"y": 1, "x": 2}, "m": -3, "b": "last"}"#

    func keys(_ value: JSONValue?) -> [String] {
        guard case .object(let members)? = value else { return [] }
        return members.map(\.key)
    }

    func testTheParserKeepsFileOrderAndRepeatedKeys() throws {
        let parsed = try JSONParser.parse(Array(Self.text.utf8))
        XCTAssertEqual(keys(parsed), ["zeta", "b", "alpha", "m", "b"])
        XCTAssertEqual(keys(parsed["alpha"]), ["y", "x"])
        XCTAssertEqual(parsed["b"], .string("last"), "the last value of a repeated key counts")
        XCTAssertEqual(parsed.objectValue?["b"], .string("last"))
    }

    /// A Decoder cannot tell the file's order: Foundation's JSONDecoder hands keys over in a hash
    /// order that changes between runs. Decoded objects are therefore sorted, the same every time.
    func testDecodingSortsKeysTheSameWayEveryTime() throws {
        let data = Data(Self.text.utf8)
        let decoded = try JSONDecoder().decode(JSONValue.self, from: data)
        XCTAssertEqual(keys(decoded), ["alpha", "b", "m", "zeta"])
        XCTAssertEqual(keys(decoded["alpha"]), ["x", "y"])
        for _ in 0..<5 { XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: data), decoded) }
        let parsed = try JSONParser.parse(Array(Self.text.utf8))
        XCTAssertEqual(decoded.objectValue?.keys.sorted(), parsed.objectValue?.keys.sorted())
        // "alpha" is reordered; "b" is repeated, and which of its values a Decoder keeps is its own
        // choice (Foundation's keeps the first).
        for (key, value) in parsed.objectValue ?? [:] where !["alpha", "b"].contains(key) {
            XCTAssertEqual(decoded[key], value, key)
        }
    }

    func testEncodingWritesWhatWasParsed() throws {
        let parsed = try JSONParser.parse(Array(Self.text.utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = String(decoding: try encoder.encode(parsed), as: UTF8.self)
        XCTAssertEqual(text, #"{"alpha":{"x":2,"y":1},"b":"last","m":-3,"zeta":1}"#)
        let array = String(decoding: try encoder.encode(JSONValue.array([.double(2.5), .null, .bool(false)])),
                           as: UTF8.self)
        XCTAssertEqual(array, "[2.5,null,false]")
    }
}
