import Distributed
import XCTest

/// Runs `body` on `n` in-process ranks and returns each rank's value; any rank's error fails
/// the test with the rank and the error.
func onRanks<T>(
    _ n: Int, timeout: Double = 120, file: StaticString = #filePath, line: UInt = #line,
    _ body: @escaping (InProcessCommunicator) throws -> T
) throws -> [T] {
    let world = try InProcessWorld(size: n, timeout: timeout)
    return try world.run(body).enumerated().map { r, result in
        switch result {
        case .success(let v): return v
        case .failure(let e):
            XCTFail("rank \(r) of \(n) threw: \(e)", file: file, line: line)
            throw e
        }
    }
}

/// The error a rank threw, or nil.
func error<T>(_ result: Result<T, any Error>) -> (any Error)? {
    if case .failure(let e) = result { return e }
    return nil
}

struct Injected: Error, CustomStringConvertible {
    var description: String { "injected failure" }
}
