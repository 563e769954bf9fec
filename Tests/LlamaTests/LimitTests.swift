// Size limits and divisor suggestions: absurd sizes in a config.json are refused with the limit
// before any arithmetic, and the divisors a message suggests come quickly for any size.
import Foundation
import XCTest
@testable import Llama

final class LimitTests: XCTestCase {
    func testDivisorsMatchTheDefinitionForSmallNumbers() {
        for n in 1...400 {
            let reference = (1...n).filter { n % $0 == 0 }
            XCTAssertEqual(divisors(of: n, limit: .max), reference, "divisors of \(n)")
        }
        XCTAssertEqual(divisors(of: 0), [])
        XCTAssertEqual(divisors(of: -6), [])
    }

    func testDivisorsOfLargeNumbersAreQuickAndCappedNearTheAskedValue() {
        let start = Date()
        // 10¹² + 1 = 73 · 137 · 99990001: a slow divisor loop would run 10¹² times.
        XCTAssertEqual(divisors(of: 1_000_000_000_001),
                       [1, 73, 137, 10001, 99_990_001, 7_299_270_073, 13_698_630_137, 1_000_000_000_001])
        // 2⁴⁰ has 41 divisors; only the 12 nearest 1000 are listed.
        let near = divisors(of: 1 << 40, near: 1000, limit: 12)
        XCTAssertEqual(near, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048])
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "√n steps, not n")
        XCTAssertEqual(divisorList(of: 12, near: 5), "1, 2, 3, 4, 6, 12")
        XCTAssertTrue(divisorList(of: 720_720, near: 7).hasSuffix("(the 12 of its 240 divisors nearest 7)"),
                      divisorList(of: 720_720, near: 7))
    }

    func testSizesAboveTheirLimitsAreRefusedNamingTheLimit() throws {
        var c = LlamaConfig.micro
        c.hiddenSize = 1_000_000_000_001
        assertRefused(c, ["\"hidden_size\"", "1000000000001", "limit of 16777216"])
        c = LlamaConfig.micro
        (c.numAttentionHeads, c.numKeyValueHeads) = (4_000_000_000_000_000_001, 3)
        assertRefused(c, ["\"num_attention_heads\"", "limit of 65536"])
        c = LlamaConfig.micro
        c.vocabSize = 5_000_000_000
        assertRefused(c, ["\"vocab_size\"", "limit of 4294967296", "32 bits"])
        // Each size within its limit, but together far beyond anything countable in Int: refused in Double.
        c = LlamaConfig(vocabSize: 1 << 32, hiddenSize: 1 << 24, intermediateSize: 1 << 26, numHiddenLayers: 1 << 16,
                        numAttentionHeads: 1 << 16, numKeyValueHeads: 1 << 16, headDim: 256)
        assertRefused(c, ["parameters", "2^56"])
        XCTAssertNoThrow(try LlamaConfig.smollm135m.validate())
    }

    func assertRefused(_ c: LlamaConfig, _ mentions: [String], line: UInt = #line) {
        XCTAssertThrowsError(try c.validate(source: "test"), line: line) { error in
            for m in mentions {
                XCTAssertTrue("\(error)".contains(m), "message should mention \(m): \(error)", line: line)
            }
        }
    }
}
