// OpProfiler.swift: where a step's time goes, op by op (`picotron bench --profile`).
//
// Forward: the time from the end of the previous op (or from `mark()`) to the end of this one is
// this op's, which in an eager program is the op itself and the glue before it. Backward: each op's
// backward closure, timed exactly. Off by default: then an op pays one branch. It records the thread
// that runs the model (one rank); do not profile several threads at once.

import Dispatch

public enum OpProfiler {
    public struct Entry: Sendable {
        public var calls = 0
        public var seconds = 0.0
    }

    nonisolated(unsafe) public private(set) static var isEnabled = false
    nonisolated(unsafe) public private(set) static var forward: [String: Entry] = [:]
    nonisolated(unsafe) public private(set) static var backward: [String: Entry] = [:]
    nonisolated(unsafe) private static var lastMark: UInt64 = 0

    /// Starts recording from zero.
    public static func start() {
        (forward, backward, isEnabled) = ([:], [:], true)
        mark()
    }

    public static func stop() { isEnabled = false }

    /// The next op's forward time starts now (call before a forward pass).
    public static func mark() { lastMark = DispatchTime.now().uptimeNanoseconds }

    /// Adds `seconds` under `name` outside any op (the optimizer step, say).
    public static func add(_ name: String, seconds: Double) {
        forward[name, default: Entry()].calls += 1
        forward[name, default: Entry()].seconds += seconds
    }

    static func forwardEnded(_ function: StaticString) {
        let now = DispatchTime.now().uptimeNanoseconds
        let name = opName(function)
        forward[name, default: Entry()].calls += 1
        forward[name, default: Entry()].seconds += Double(now &- lastMark) / 1e9
        lastMark = now
    }

    static func timeBackward(_ function: StaticString, _ body: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        let name = opName(function)
        backward[name, default: Entry()].calls += 1
        backward[name, default: Entry()].seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        lastMark = DispatchTime.now().uptimeNanoseconds
    }

    /// "matmul(_:_:transposeA:transposeB:)" → "matmul".
    static func opName(_ function: StaticString) -> String {
        let s = "\(function)"
        return s.firstIndex(of: "(").map { String(s[..<$0]) } ?? s
    }
}
