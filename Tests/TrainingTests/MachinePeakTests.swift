// The sgemm peak behind MFU: a recent reading of this machine is read from the cache, a stale or
// foreign one is measured again, a higher reading is never replaced by a lower one; and a run whose
// MFU would pass 100% measures the peak again once, says so, and never reports more than 100%.

import Foundation
import XCTest
import Llama
@testable import Training

final class MachinePeakTests: XCTestCase {
    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-peak-\(UUID())")
        setenv("PICOTRON_CACHE_DIR", tmp.path, 1)
    }
    override func tearDown() {
        unsetenv("PICOTRON_CACHE_DIR")
        try? FileManager.default.removeItem(at: tmp)
    }

    func here(_ gflops: Double, age: TimeInterval = 0, cpu: String = MachinePeak.cpuName()) -> MachinePeak {
        MachinePeak(gflops: gflops, cores: ProcessInfo.processInfo.activeProcessorCount, cpu: cpu,
                    measured: Date(timeIntervalSinceNow: -age))
    }

    func testARecentReadingOfThisMachineIsReadFromTheCache() {
        here(123.5).save()
        let (peak, cached) = MachinePeak.current()
        XCTAssertTrue(cached)
        XCTAssertEqual(peak.gflops, 123.5)
    }

    func testAStaleOrForeignReadingIsMeasuredAgainAndCached() {
        for old in [here(123.5, age: MachinePeak.maxAge + 60), here(123.5, cpu: "another CPU")] {
            old.save()
            let (peak, cached) = MachinePeak.current()
            XCTAssertFalse(cached)
            XCTAssertGreaterThan(peak.gflops, 0)
            XCTAssertNotEqual(peak.gflops, 123.5)
            XCTAssertEqual(MachinePeak.current().peak.gflops, peak.gflops, "the new reading is what the next run reads")
        }
    }

    func testMeasuringAgainNeverLowersThePeak() {
        let high = here(1e9)   // no machine reaches this: a new reading is lower
        XCTAssertEqual(high.remeasured().gflops, 1e9)
        XCTAssertEqual(MachinePeak.current().peak.gflops, 1e9)
    }

    /// A peak far too low makes every step's MFU pass 100%: measured again once (here a stand-in that
    /// returns a peak still too low), said once, and MFU is reported at 100%, never above.
    func testAnMFUAbove100PercentIsMeasuredAgainAndCapped() throws {
        var o = TrainOptions()
        (o.steps, o.microBatchSize, o.gradientAccumulation, o.sequenceLength, o.logFrequency) = (3, 2, 1, 16, 1)
        o.peakGFLOPSPerRank = 1e-9
        let calls = Counter()
        o.remeasurePeak = { calls.increment(); return 2e-9 }
        let config = LlamaConfig(vocabSize: 256, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1,
                                 numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 32)
        let trainer = try Trainer(model: LlamaForCausalLM(config: config, seed: 1),
                                  dataset: TokenDataset(text: String(repeating: "to be or not to be ", count: 20)), options: o)
        var lines: [String] = []
        let metrics = try trainer.run { lines.append($0) }
        XCTAssertEqual(calls.value, 1, "measured again once")
        XCTAssertEqual(metrics.map(\.mfu), [1, 1, 1])
        let notes = lines.filter { $0.hasPrefix("note: step") }
        XCTAssertEqual(notes.count, 2, "one note for the new reading, one when MFU is capped:\n\(lines.joined(separator: "\n"))")
        XCTAssertTrue(notes[0].contains("measured again: 0.0 GFLOP/s per rank"), notes[0])
        XCTAssertTrue(notes[1].contains("capped at 100%"), notes[1])
        XCTAssertFalse(lines.contains { $0.contains("MFU: 1") && !$0.contains("MFU: 100.0%") }, lines.joined(separator: "\n"))
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var value: Int { lock.withLock { n } }
    func increment() { lock.withLock { n += 1 } }
}
