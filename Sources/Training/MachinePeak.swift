// MachinePeak.swift: the machine's sgemm peak, the denominator of every MFU the project prints.
//
// One reading taken at the start of a run is fragile: on a busy machine it comes out low (and MFU
// above 100%), and under mpirun every rank measures while the others do the same. So the peak is
// measured with every core, as the best of a few short rounds, and kept in a cache file with the
// date, the CPU and the core count; a run reads it (under mpirun, the first rank of each machine
// measures and the others wait for its file). When a run's MFU would come out above 100%, the peak
// is measured again and the higher reading kept, and the run says so.

import Foundation
import TensorCore

public struct MachinePeak: Codable, Sendable, Equatable {
    /// GFLOP/s of sgemm with every core.
    public var gflops: Double
    public var cores: Int
    public var cpu: String
    public var measured: Date

    /// How old a cached reading may be before it is taken again.
    public static let maxAge: TimeInterval = 7 * 24 * 3600

    /// The cache file: `$PICOTRON_CACHE_DIR`, else `$XDG_CACHE_HOME/picotron`, else `~/.cache/picotron`.
    public static var cacheFile: URL {
        let env = ProcessInfo.processInfo.environment
        let dir = env["PICOTRON_CACHE_DIR"].map { URL(fileURLWithPath: $0) }
            ?? env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0).appendingPathComponent("picotron") }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/picotron")
        return dir.appendingPathComponent("sgemm-peak.json")
    }

    /// This machine's peak: the cached reading if it is recent and of this CPU and core count, else
    /// a new measurement (cached). `wait`: another process of this machine is measuring (under
    /// mpirun, every rank but the machine's first), so wait for its reading instead of competing.
    public static func current(wait: Bool = false) -> (peak: MachinePeak, cached: Bool) {
        let identity = (cpu: cpuName(), cores: ProcessInfo.processInfo.activeProcessorCount)
        func usable() -> MachinePeak? {
            guard let data = try? Data(contentsOf: cacheFile),
                  let p = try? JSONDecoder.withDates.decode(MachinePeak.self, from: data),
                  p.cpu == identity.cpu, p.cores == identity.cores, p.gflops > 0,
                  -p.measured.timeIntervalSinceNow < maxAge else { return nil }
            return p
        }
        if let p = usable() { return (p, true) }
        if wait {
            for _ in 0 ..< 600 {   // at most a minute
                usleep(100_000)
                if let p = usable() { return (p, true) }
            }
        }
        let p = MachinePeak(gflops: measure(), cores: identity.cores, cpu: identity.cpu, measured: Date())
        p.save()
        return (p, false)
    }

    /// Measures again and keeps the higher of this and the new reading (cached): the peak is what the
    /// machine can do, and a low reading only means it was busy.
    public func remeasured() -> MachinePeak {
        var p = self
        p.gflops = max(gflops, Self.measure())
        p.measured = Date()
        p.save()
        return p
    }

    /// The best of `rounds` readings of `Throughput.measureSgemmPeak` with one BLAS thread per core
    /// (the thread count is put back afterwards).
    public static func measure(rounds: Int = 3) -> Double {
        let threads = BLAS.threads
        defer { BLAS.setThreads(threads) }
        BLAS.setThreads(ProcessInfo.processInfo.activeProcessorCount)
        return (0 ..< rounds).map { _ in Throughput.measureSgemmPeak() }.max() ?? 0
    }

    func save() {
        let dir = Self.cacheFile.deletingLastPathComponent()
        guard (try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)) != nil,
              let data = try? JSONEncoder.withDates.encode(self) else { return }   // no cache: measured next time
        // Written under another name and renamed: a waiting process never reads half a file.
        let temporary = dir.appendingPathComponent(".sgemm-peak.\(getpid()).tmp")
        guard (try? data.write(to: temporary)) != nil else { return }
        if rename(temporary.path, Self.cacheFile.path) != 0 { try? FileManager.default.removeItem(at: temporary) }
    }

    /// The CPU's model name (Linux /proc/cpuinfo), or "unknown CPU".
    public static func cpuName() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let name = line.split(separator: ":", maxSplits: 1).last else { return "unknown CPU" }
        return name.trimmingCharacters(in: .whitespaces)
    }

    /// "205 GFLOP/s, measured 2026-11-30 11:50 (cached)".
    public func describe(cached: Bool) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return String(format: "%.0f GFLOP/s with %d cores, measured %@%@", gflops, cores, f.string(from: measured),
                      cached ? " (cached)" : "")
    }
}

extension JSONEncoder {
    static var withDates: JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }
}

extension JSONDecoder {
    static var withDates: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }
}
