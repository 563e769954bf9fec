// Vectorized reductions and a parallel loop.
//
// The compiler vectorizes element-wise loops by itself, but not float reductions (sum, max,
// dot): without permission to reassociate, `s += x[i]` must run in order. These helpers keep
// 16 partial results in a SIMD register instead, which changes the summation order (and so the
// last bits) but not the mathematics.

import Foundation

@usableFromInline typealias V16 = SIMD16<Float>

@inlinable @inline(__always)
func load16(_ p: UnsafePointer<Float>) -> V16 {
    UnsafeRawPointer(p).loadUnaligned(as: V16.self)
}

@inlinable @inline(__always)
func store16(_ p: UnsafeMutablePointer<Float>, _ v: V16) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self)
}

/// Calls `vector(i)` for i = lower, lower + 16, … while 16 elements remain, then `scalar(i)` for
/// each element left: the shape of every hand-vectorized loop here (both closures inline).
@inlinable @inline(__always)
func forEach16(_ r: Range<Int>, vector: (Int) -> Void, scalar: (Int) -> Void) {
    var i = r.lowerBound
    while i + 16 <= r.upperBound { vector(i); i += 16 }
    while i < r.upperBound { scalar(i); i += 1 }
}

/// Σ p[0..<n].
@inlinable
public func vectorSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = V16(repeating: 0)
    var i = 0
    while i + 16 <= n { acc += load16(p + i); i += 16 }
    var s = acc.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Σ a[i]·b[i].
@inlinable
public func vectorDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = V16(repeating: 0)
    var i = 0
    while i + 16 <= n { acc += load16(a + i) * load16(b + i); i += 16 }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// max p[0..<n] (−∞ for n = 0).
@inlinable
public func vectorMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = -Float.infinity
    var i = 0
    if n >= 16 {
        var acc = load16(p)
        i = 16
        while i + 16 <= n {
            let x = load16(p + i)
            acc.replace(with: x, where: x .> acc)
            i += 16
        }
        m = acc.max()
    }
    while i < n { m = Swift.max(m, p[i]); i += 1 }
    return m
}

/// Replaces p[j] by exp(p[j] − shift) and returns their sum: the middle of a softmax.
@inlinable
public func expShiftedSum(_ p: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
    var acc = V16(repeating: 0)
    var tail: Float = 0
    forEach16(0..<n) { j in
        let e = fastExp(load16(p + j) - shift)
        store16(p + j, e)
        acc += e
    } scalar: { j in
        p[j] = fastExp(p[j] - shift)
        tail += p[j]
    }
    return acc.sum() + tail
}

/// p[j] ← exp(p[j] − shift): probabilities from scores and their log-sum-exp.
@inlinable
public func expShifted(_ p: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) {
    forEach16(0..<n) { j in store16(p + j, fastExp(load16(p + j) - shift)) }
        scalar: { j in p[j] = fastExp(p[j] - shift) }
}

/// dst[j] ← (accumulate ? dst[j] : 0) + scale · exp(src[j] − shift): a softmax's gradient rows.
@inlinable
public func scaledExpShifted(_ src: UnsafePointer<Float>, _ n: Int, shift: Float, scale: Float,
                             into dst: UnsafeMutablePointer<Float>, accumulate: Bool) {
    if accumulate {
        forEach16(0..<n) { j in store16(dst + j, load16(dst + j) + scale * fastExp(load16(src + j) - shift)) }
            scalar: { j in dst[j] += scale * fastExp(src[j] - shift) }
    } else {
        forEach16(0..<n) { j in store16(dst + j, scale * fastExp(load16(src + j) - shift)) }
            scalar: { j in dst[j] = scale * fastExp(src[j] - shift) }
    }
}

/// Runs `body(i)` for i in 0..<n on all cores (Dispatch's concurrentPerform), or inline when
/// n is 1. Work items must not write to the same memory.
///
/// OpenBLAS called from several threads at once while it also runs its own threads fights
/// for the cores (measured: 2× slower on 2 cores), so BLAS is held to one thread inside the
/// loop and given back its thread count after. The thread count never changes results:
/// OpenBLAS splits a product by rows and columns, never along the summed dimension.
@inlinable
public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    if n <= 1 { if n == 1 { body(0) }; return }
    let blasThreads = BLAS.threads
    if blasThreads > 1 { BLAS.setThreads(1) }
    DispatchQueue.concurrentPerform(iterations: n, execute: body)
    if blasThreads > 1 { BLAS.setThreads(blasThreads) }
}

/// Splits 0..<n into about one contiguous range per core (none smaller than `grain`) and runs
/// `body` on them in parallel: for element-wise loops big enough to pay for a thread hand-off.
@inlinable
public func parallelRanges(_ n: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
    let parts = Swift.min(coreCount, n / Swift.max(grain, 1))
    if parts <= 1 { body(0..<n); return }
    DispatchQueue.concurrentPerform(iterations: parts) { p in body((p * n / parts)..<((p + 1) * n / parts)) }
}

/// The number of cores this process may use.
public let coreCount = ProcessInfo.processInfo.activeProcessorCount

import COpenBLAS   // its shim header also brings glibc's malloc.h

/// Asks the C allocator to keep freed memory for reuse instead of returning large blocks to the
/// operating system. Every training step frees and reallocates the same activation and gradient
/// buffers; by default glibc unmaps blocks over its threshold, and the next step pays a page
/// fault and a page clear for every 4 KB again (measured: ~8% of a SmolLM-135M step).
public func keepFreedMemoryForReuse() {
    let mb = ProcessInfo.processInfo.environment["PICOTRON_MMAP_THRESHOLD_MB"].flatMap(Int32.init) ?? 1024
    _ = mallopt(M_MMAP_THRESHOLD, mb << 20)   // serve blocks up to 1 GB from the heap
    _ = mallopt(M_TRIM_THRESHOLD, Int32.max) // and never shrink the heap
}
