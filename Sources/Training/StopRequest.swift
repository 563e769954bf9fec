// StopRequest.swift: Ctrl-C (SIGINT) and SIGTERM end a run cleanly instead of losing it.
//
// The first signal only raises a flag: the training loop finishes the step it is in, every rank
// agrees to stop after that same step (a tiny all-reduce, since a signal reaches ranks at
// different moments), the checkpoint is saved, and the program exits with 128 + the signal's
// number. A second signal exits at once. SIGUSR1 does the same as the first SIGTERM: mpirun
// forwards it to every rank without killing them (`kill -USR1 <pid of mpirun>`), whereas on
// SIGINT/SIGTERM mpirun itself sends SIGTERM to the ranks and SIGKILL one second later (raise
// that with `mpirun --mca odls_base_sigkill_timeout 60`).
import Foundation
import Synchronization

public enum StopRequest {
    /// The signal that asked to stop, 0 if none.
    private static let received = Atomic<Int32>(0)

    /// The signal that asked the run to stop, or nil.
    public static var signal: Int32? {
        let s = received.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }

    /// The exit status of a run stopped by `signal`: 128 + its number, as a shell reports it.
    public static var exitStatus: Int32? { signal.map { 128 + $0 } }

    /// Installs the handlers (SIGINT, SIGTERM, SIGUSR1). Call once, before training.
    public static func install() {
        for s in [SIGINT, SIGTERM, SIGUSR1] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                // Only async-signal-safe calls here: an atomic exchange, write(2), _exit(2).
                if StopRequest.received.exchange(number, ordering: .relaxed) != 0 { _exit(128 + number) }
                let message: StaticString =
                    "\npicotron: stopping after this step and saving a checkpoint (a second Ctrl-C quits at once, unsaved)\n"
                _ = Foundation.write(2, message.utf8Start, message.utf8CodeUnitCount)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(s, &action, nil)
        }
    }

    /// Raises the flag as a signal would (tests, and a program that wants to stop its own run).
    public static func request(_ signal: Int32 = SIGTERM) { received.store(signal, ordering: .relaxed) }

    /// Lowers the flag (tests).
    public static func reset() { received.store(0, ordering: .relaxed) }
}
