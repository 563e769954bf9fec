import ArgumentParser
import Formats
import Foundation
import Llama
import TensorCore

/// `picotron reference`: the single-process model on a Hugging Face directory and a batch,
/// so a user can check this implementation against their own PyTorch one.
struct Reference: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the loss (and optionally every gradient) of a Hugging Face Llama on a batch.",
        discussion: """
            The batch file is safetensors with int64 `input_ids` and `labels`, both [batch, seq], in \
            transformers' convention: the loss shifts labels inside and ignores -100. The printed \
            loss equals `LlamaForCausalLM(...)(input_ids, labels=labels).loss` in float32.
            """)

    @Option(help: "A Hugging Face Llama directory (config.json + model.safetensors or a sharded index).")
    var model: String

    @Option(help: "A safetensors file with int64 `input_ids` and `labels`, shape [batch, seq].")
    var batch: String

    @Option(help: "Write the gradient of every parameter here, under its Hugging Face name.")
    var gradsOut: String?

    func run() throws {
        let llama = try LlamaForCausalLM.load(directory: URL(fileURLWithPath: model))
        let (ids, labels, b, t) = try Self.readBatch(URL(fileURLWithPath: batch), vocab: llama.config.vocabSize)
        let (loss, _) = llama.loss(ids, labels: labels, batch: b, length: t)
        print("loss: \(loss.item)")
        guard let gradsOut else { return }
        loss.backward()
        try SafeTensorsWriter.write(llama.gradients(), metadata: ["format": "pt"], to: URL(fileURLWithPath: gradsOut))
        print("gradients: \(llama.namedParameters.count) tensors written to \(gradsOut)")
    }

    /// Reads and checks a transformers-style batch file.
    static func readBatch(_ url: URL, vocab: Int) throws -> (ids: [Int], labels: [Int], batch: Int, length: Int) {
        let file = try SafeTensorsFile(contentsOf: url)
        for name in ["input_ids", "labels"] {
            let dtype = try file.info(name).dtype
            guard dtype == .i64 || dtype == .i32 else {
                throw RunError("\(url.path): \(name) is \(dtype.rawValue), but token ids are integers: save it as "
                                      + "int64 (torch.long), e.g. `save_file({\"\(name)\": \(name).long(), ...}, path)`")
            }
        }
        let shape = try file.info("input_ids").shape
        let labelShape = try file.info("labels").shape
        guard shape.count == 2, shape[0] > 0, shape[1] > 0 else {
            throw RunError("\(url.path): input_ids has shape \(shape); expected [batch, seq] with both > 0")
        }
        guard labelShape == shape else {
            throw RunError("\(url.path): labels has shape \(labelShape) but input_ids \(shape); they must match")
        }
        let ids = try file.int64s("input_ids").map { Int($0) }
        let labels = try file.int64s("labels").map { Int($0) }
        if let bad = ids.first(where: { $0 < 0 || $0 >= vocab }) {
            throw RunError("\(url.path): input_ids holds \(bad), outside the model's vocabulary 0..<\(vocab)")
        }
        if let bad = labels.first(where: { $0 != LlamaForCausalLM.ignoreIndex && ($0 < 0 || $0 >= vocab) }) {
            throw RunError("\(url.path): labels holds \(bad); labels must be in 0..<\(vocab) or -100 (ignored)")
        }
        return (ids, labels, shape[0], shape[1])
    }
}
