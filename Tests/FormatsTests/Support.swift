// What the format tests share: one assertion for the one-line errors of model files.
import Formats
import XCTest

/// Runs `body`, expecting a `ModelFileError` of `kind` whose one-line message names `file` and contains
/// every string of `mentions`. Reports the message it got when it does not.
func assertModelFileError<T>(_ kind: ModelFileError.Kind, file: String, mentions: [String],
                             _ body: () throws -> T, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a \(kind) error mentioning \(mentions), but nothing was thrown", line: line)
    } catch let error as ModelFileError {
        let message = error.description
        XCTAssertEqual(error.kind, kind, "wrong kind for: \(message)", line: line)
        XCTAssertEqual(error.file, file, "wrong file in: \(message)", line: line)
        XCTAssertTrue(message.hasPrefix(file + ": "), "message does not start with the file: \(message)", line: line)
        XCTAssertEqual(error.localizedDescription, message, line: line)
        XCTAssertFalse(message.contains("\n"), "not one line: \(message)", line: line)
        for m in mentions where !message.contains(m) {
            XCTFail("message does not mention \(m): \(message)", line: line)
        }
    } catch {
        XCTFail("expected a ModelFileError, got \(error)", line: line)
    }
}
