import Foundation

/// OpenBLAS reads its settings from the environment when the library loads, before any line of
/// ours runs. Two of its defaults cost a lot on some machines, so the executables (`picotron`,
/// the lessons) start themselves once more with them set, unless the user set them:
/// - `OPENBLAS_CORETYPE`: OpenBLAS 0.3.21 does not recognise some newer Intel CPUs and falls back
///   to its generic kernel (4–5× slower matrix products); we name the kernel the CPU supports.
/// - `OPENBLAS_THREAD_TIMEOUT=4`: idle BLAS threads otherwise spin for 2^28 cycles after each
///   product, taking the cores from our own element-wise work (measured: 15% of a `tiny` step).
/// Neither changes results beyond float32 rounding of the kernel.
public enum OpenBLASSetup {
    static let marker = "PICOTRON_OPENBLAS_SETUP"

    /// Call first thing in `main`: it may replace the process with a new start of itself.
    public static func restartIfUseful() {
        #if os(Linux)
        let env = ProcessInfo.processInfo.environment
        guard env[marker] == nil else { return }
        var settings = [(String, String)]()
        if env["OPENBLAS_CORETYPE"] == nil, let core = BLAS.betterKernel { settings.append(("OPENBLAS_CORETYPE", core)) }
        if env["OPENBLAS_THREAD_TIMEOUT"] == nil { settings.append(("OPENBLAS_THREAD_TIMEOUT", "4")) }
        setenv(marker, settings.map { "\($0.0)=\($0.1)" }.joined(separator: " "), 1)   // never twice
        guard !settings.isEmpty else { return }
        for (name, value) in settings { setenv(name, value, 1) }
        execv("/proc/self/exe", CommandLine.unsafeArgv)   // returns only if it failed: carry on as we are
        #endif
    }

    /// A note for the user when we chose the kernel for them.
    public static var note: String? {
        guard let set = ProcessInfo.processInfo.environment[marker], set.contains("OPENBLAS_CORETYPE") else { return nil }
        return "note: OpenBLAS does not recognise this CPU; picotron runs it with \(set) (set OPENBLAS_CORETYPE yourself to choose)"
    }
}
