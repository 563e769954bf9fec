// What pipeline stages send each other: activations forward to the next stage, their gradients
// backward to the previous one, always `[mbs, seq, hidden]` floats, on the pipeline group with
// *group* ranks (stage s talks to s − 1 and s + 1; ProcessGrid's ppNextRank is a world rank).
// Legend: B = micro-batch size, T = sequence length (per cp rank), C = hidden, s = this stage.
//
//   forward   stage s ──── h [B, T, C] ────▶ stage s + 1
//   backward  stage s ◀── ∂L/∂h [B, T, C] ── stage s + 1
//
// Every call has a partner call on the neighbour, in the same order: a pipeline that deadlocks
// has one stage waiting for a message its neighbour never sends. The combined calls post both
// halves before waiting on either (non-blocking), which 1F1B needs: two neighbours that both
// first send and then receive would otherwise each wait for the other to receive.
// ### References
// picotron, pipeline_parallel/pp_communications.py (pipeline_communicate, bidirectional_…)

import Distributed

/// One stage's two links, to the previous and the next stage of the pipeline group.
public struct PipelineLink {
    public let group: Communicator
    /// Floats in one message: B · T · C.
    public let count: Int

    public init(group: Communicator, count: Int) {
        (self.group, self.count) = (group, count)
    }

    public var stage: Int { group.rank }
    public var stages: Int { group.size }
    public var isFirst: Bool { stage == 0 }
    public var isLast: Bool { stage == stages - 1 }

    // Tags keep forward and backward messages apart when both are in flight between two stages.
    static let forwardTag = 1, backwardTag = 2

    /// Sends this stage's output activation to the next stage.
    public func sendForward(_ h: [Float]) throws {
        try group.send(h, to: stage + 1, tag: Self.forwardTag)                    // [B, T, C]
    }

    /// Receives this stage's input activation from the previous stage.
    public func receiveForward() throws -> [Float] {
        try group.recv(count: count, from: stage - 1, tag: Self.forwardTag)      // [B, T, C]
    }

    /// Sends ∂L/∂(input activation) back to the previous stage.
    public func sendBackward(_ g: [Float]) throws {
        try group.send(g, to: stage - 1, tag: Self.backwardTag)                   // [B, T, C]
    }

    /// Receives ∂L/∂(output activation) from the next stage.
    public func receiveBackward() throws -> [Float] {
        try group.recv(count: count, from: stage + 1, tag: Self.backwardTag)     // [B, T, C]
    }

    // Interleaved stages pass activations around a ring: the last stage's chunk k feeds the first
    // stage's chunk k + 1. Messages are posted without waiting (the receiver takes them when it
    // needs them), and each is tagged with what it carries, so they can arrive in any order.

    /// Posts an activation for the next stage (wrapping around), tagged for micro-batch `m` and the
    /// receiving chunk `chunk` (global chunk index, of `chunks`).
    public func postForward(_ h: [Float], microBatch m: Int, chunk: Int, of chunks: Int) throws -> CommRequest<Void> {
        try group.isend(h, to: (stage + 1) % stages, tag: try Self.tag(m, chunk, chunks, backward: false))
    }

    /// Receives the activation of micro-batch `m` for this stage's chunk `chunk`.
    public func receiveForward(microBatch m: Int, chunk: Int, of chunks: Int) throws -> [Float] {
        try group.recv(count: count, from: (stage + stages - 1) % stages, tag: try Self.tag(m, chunk, chunks, backward: false))
    }

    /// Posts a gradient for the previous stage (wrapping around), for its chunk `chunk`.
    public func postBackward(_ g: [Float], microBatch m: Int, chunk: Int, of chunks: Int) throws -> CommRequest<Void> {
        try group.isend(g, to: (stage + stages - 1) % stages, tag: try Self.tag(m, chunk, chunks, backward: true))
    }

    /// Receives ∂L/∂output of micro-batch `m` for this stage's chunk `chunk`.
    public func receiveBackward(microBatch m: Int, chunk: Int, of chunks: Int) throws -> [Float] {
        try group.recv(count: count, from: (stage + 1) % stages, tag: try Self.tag(m, chunk, chunks, backward: true))
    }

    /// A tag per (micro-batch, chunk, direction), above the fixed tags.
    static func tag(_ m: Int, _ chunk: Int, _ chunks: Int, backward: Bool) throws -> Int {
        let t = 16 + 2 * (m * chunks + chunk) + (backward ? 1 : 0)
        guard t <= 32767 else {
            throw CommError.invalidArgument("micro-batch \(m) of chunk \(chunk) needs tag \(t), above MPI's guaranteed 32767: "
                                            + "use fewer micro-batches or virtual stages per step")
        }
        return t
    }

    /// 1F1B's steady state, forward half: sends an output activation on and receives the gradient
    /// of an earlier one back, both posted before either is waited for.
    public func sendForwardReceiveBackward(_ h: [Float]) throws -> [Float] {
        try exchange(h, with: stage + 1, sendTag: Self.forwardTag, receiveTag: Self.backwardTag)   // [B, T, C]
    }

    /// 1F1B's steady state, backward half: sends a gradient back and receives the next input.
    public func sendBackwardReceiveForward(_ g: [Float]) throws -> [Float] {
        try exchange(g, with: stage - 1, sendTag: Self.backwardTag, receiveTag: Self.forwardTag)   // [B, T, C]
    }

    /// Sends `data` to `peer` and receives `count` floats from it, the two directions at once.
    /// The neighbour makes the mirror call at the same moment, so neither may wait before both
    /// halves are posted (picotron's `bidirectional_pipeline_communicate`).
    func exchange(_ data: [Float], with peer: Int, sendTag: Int, receiveTag: Int) throws -> [Float] {
        // TASK(Step3.4) the combined calls (send one way, receive the other) @ Lessons/03-pipeline-parallel.md#task-34
        // > Post the send of `data` to `peer` with `sendTag` (`group.isend`) and the receive of
        // > `count` floats from `peer` with `receiveTag` (`group.irecv`), then wait for both. A blocking
        // > send first would wait for the neighbour's receive while the neighbour waits in its own
        // > send for ours: both stages stop.
        let sent = try group.isend(data, to: peer, tag: sendTag)
        let received = try group.irecv(count: count, from: peer, tag: receiveTag)
        try sent.wait()
        return try received.wait()                                                // [B, T, C]
        // STAND-IN: return [Float](repeating: 0, count: count)
        // END TASK(Step3.4)
    }
}
