// The key tables of picotron's config: one entry per key drives reading, writing, notes and the key
// reference; every key of picotron's own template is in them, each with its help.
import Formats
import Foundation
import XCTest
@testable import Training

final class ConfigKeyTests: XCTestCase {
    func testTheReferenceListsEveryKeyWithItsTypeDefaultAndHelp() throws {
        let reference = PicotronConfig.keyReference
        XCTAssertEqual(reference.first, "distributed.tp_size (an integer, default 1): Tensor-parallel ranks: each "
                       + "holds a slice of every weight matrix.")
        XCTAssert(reference.contains { $0.hasPrefix("training.max_tokens (an integer or null, default null): ") })
        XCTAssert(reference.contains {
            $0.hasPrefix("training.min_lr (a number or null, default unset; not in picotron): ")
        })
        XCTAssert(reference.contains { $0.hasPrefix(#"model.dtype (a string, default "float32"): "#) })
        let template = try JSONParser.parse(Array(PicotronConfigTests.picotronTemplate.utf8))
        guard case .object(let sections) = template else { return XCTFail("the template is not an object") }
        for (section, value) in sections {
            guard case .object(let keys) = value else { continue }
            for (key, _) in keys {
                let line = reference.first { $0.hasPrefix("\(section).\(key) (") }
                XCTAssertNotNil(line, "\(section).\(key) is not in the reference")
                XCTAssertFalse(line?.contains("not in picotron") ?? false, "\(section).\(key) is picotron's")
            }
        }
    }

    func testKeysAreUniqueAndHelped() {
        for section in PicotronConfig.sections {
            XCTAssertEqual(Set(section.keyNames).count, section.keyNames.count, section.name)
        }
        for line in PicotronConfig.keyReference {
            XCTAssertFalse(line.hasSuffix(": "), "no help: \(line)")
        }
        XCTAssertEqual(PicotronConfig.keyReference.count, 58)   // picotron's keys and our extensions (sequence_parallel, zero_stage among them)
    }
}
