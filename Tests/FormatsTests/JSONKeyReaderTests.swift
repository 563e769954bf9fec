// JSONKeyReader: the one typed key reader of config.json and picotron's config. Absent and null keep
// the default, a wrong type names the key path, the type expected and the value found.
import Formats
import XCTest

final class JSONKeyReaderTests: XCTestCase {
    func reader(_ text: String, path: String? = nil, wholeNumbers: Bool = false) throws -> JSONKeyReader {
        try JSONKeyReader(JSONParser.parse(Array(text.utf8)), path: path, wholeNumbersAreIntegers: wholeNumbers)
    }

    /// Asserts `body` throws a `JSONKeyError` whose description is `message`.
    func assertKeyError(_ message: String, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), line: line) { error in
            XCTAssertEqual((error as? JSONKeyError)?.description, message, "\(error)", line: line)
        }
    }

    func testTypedValuesDefaultsAndNull() throws {
        let keys = try reader(#"{"n": 4, "x": 1, "s": "a", "b": true, "none": null, "n": 5}"#)
        XCTAssertEqual(try keys.read("n", as: Int.self), 5, "a repeated key counts with its last value")
        XCTAssertEqual(try keys.read("x", as: Double.self), 1.0, "an integer is a number")
        XCTAssertEqual(try keys.read("s", as: String.self), "a")
        XCTAssertEqual(try keys.read("b", as: Bool.self), true)
        XCTAssertNil(try keys.read("none", as: Int.self))
        XCTAssertNil(try keys.read("absent", as: Int.self))
        var value = 7
        try keys.read("none", into: &value)
        try keys.read("absent", into: &value)
        XCTAssertEqual(value, 7, "absent and null keep the default")
        var optional: Int? = 7
        try keys.read("absent", into: &optional)
        XCTAssertEqual(optional, 7, "absent keeps an optional's value")
        try keys.read("none", into: &optional)
        XCTAssertNil(optional, "null sets an optional to nil")
    }

    func testWrongTypesNameThePathTheExpectedAndTheFound() throws {
        let keys = try reader(#"{"n": "4", "f": 4.0, "rope": {"theta": "big"}, "list": [1]}"#, path: "training")
        assertKeyError(#"training.n: expected an integer, found the string "4""#) {
            _ = try keys.read("n", as: Int.self)
        }
        assertKeyError("training.f: expected an integer, found the number 4.0") { _ = try keys.read("f", as: Int.self) }
        assertKeyError("training.list: expected true or false, found an array of 1 value") {
            _ = try keys.read("list", as: Bool.self)
        }
        assertKeyError(#"training.rope.theta: expected a number, found the string "big""#) {
            _ = try keys.object("rope")?.read("theta", as: Double.self)
        }
        assertKeyError("training.n: expected an object or null, found the string \"4\"") {
            _ = try keys.object("n", expected: "an object or null")
        }
        assertKeyError("training: expected an object, found the number 5") {
            _ = try JSONKeyReader(.int(5), path: "training")
        }
        XCTAssertEqual(try JSONKeyReader(.null, path: "training").members.count, 0, "null is an empty object")
    }

    func testWholeNumbersAreIntegersOnlyWhenAsked() throws {
        let keys = try reader(#"{"f": 4.0, "half": 4.5, "huge": 1e300}"#, wholeNumbers: true)
        XCTAssertEqual(try keys.read("f", as: Int.self), 4)
        assertKeyError("half: expected an integer, found the number 4.5") { _ = try keys.read("half", as: Int.self) }
        assertKeyError("huge: expected an integer, found the number 1e+300") { _ = try keys.read("huge", as: Int.self) }
        assertKeyError("f: expected a string, found the number 4.0") { _ = try keys.read("f", as: String.self) }
    }

    func testUnknownKeysAndDidYouMean() throws {
        let keys = try reader(#"{"seed": 1, "learning_rat": 2, "zzz": 3, "zzz": 4}"#)
        XCTAssertEqual(keys.unknownKeys(known: ["seed", "learning_rate"]), ["learning_rat", "zzz"])
        XCTAssertEqual(closestName(to: "learning_rat", in: ["seed", "learning_rate"]), "learning_rate")
        XCTAssertEqual(closestName(to: "TRAINIG", in: ["model", "training"]), "training", "case is ignored")
        XCTAssertNil(closestName(to: "zzz", in: ["seed", "learning_rate"]))
        XCTAssertEqual(editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(editDistance("", "abc"), 3)
    }
}
