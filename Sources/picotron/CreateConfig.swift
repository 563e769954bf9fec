import ArgumentParser
import Foundation
import Llama
import Training

/// `picotron create-config`: picotron's create_config.py, same flags, writing <out_dir>/<exp_name>/config.json.
/// The logic is `CreateConfigOptions.run()` in Training, so tests call it without a process.
struct CreateConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-config",
        abstract: "Write a picotron config.json for `picotron train --config`.",
        discussion: """
            Takes huggingface/picotron's create_config.py flags with the same spellings, e.g.
              picotron create-config --out_dir tmp --exp_name llama-cpu --dp 2 --tp 2 --pp 2 \
            --pp_engine 1f1b --model_name micro --grad_acc_steps 2 --mbs 4 --seq_len 128
            The model is a preset (\(presets)), a local Hugging Face directory with a config.json, or the \
            Hub id of a published Llama architecture (\(LlamaConfig.hubArchitectureIds.joined(separator: ", "))): \
            picotron reads only the architecture and initialises the weights at random, and so does this; nothing \
            is downloaded. An existing config.json is never replaced without --force.
            """)

    static var presets: String { LlamaConfig.presetNames.joined(separator: ", ") }

    @Option(name: .customLong("out_dir"), help: "Output directory to store the configs.")
    var outDir = "tmp"

    @Option(name: .customLong("exp_name"), help: "Experiment name; the config goes to <out_dir>/<exp_name>/config.json")
    var expName = "dummy_exp"

    @Option(name: .customLong("tp"), parsing: .unconditional, help: "Number of tensor-parallel ranks.")
    var tp = 1

    @Option(name: .customLong("cp"), parsing: .unconditional, help: "Number of context-parallel ranks.")
    var cp = 1

    @Option(name: .customLong("dp"), parsing: .unconditional, help: "Number of data-parallel ranks.")
    var dp = 1

    @Option(name: .customLong("pp"), parsing: .unconditional, help: "Number of pipeline-parallel stages.")
    var pp = 1

    @Option(name: .customLong("pp_engine"), help: "Pipeline schedule: 1f1b or afab.")
    var ppEngine = "1f1b"

    @Option(name: .customLong("model_name"),
            help: ArgumentHelp("A preset (micro, tiny, smollm135m), a local Hugging Face directory with a config.json, "
                               + "or a Hub id of the built-in table of published architectures (e.g. "
                               + "HuggingFaceTB/SmolLM-1.7B)."))
    var modelName = "micro"

    @Option(name: .customLong("num_hidden_layers"), parsing: .unconditional, help: "Number of hidden layers (default: the model's).")
    var numHiddenLayers: Int?

    @Option(name: .customLong("num_attention_heads"), parsing: .unconditional, help: "Number of attention heads (default: the model's).")
    var numAttentionHeads: Int?

    @Option(name: .customLong("num_key_value_heads"), parsing: .unconditional, help: "Number of key/value heads (default: the model's).")
    var numKeyValueHeads: Int?

    @Option(name: .customLong("grad_acc_steps"), parsing: .unconditional, help: "Gradient accumulation: micro-batches per optimizer step.")
    var gradAccSteps = 1

    @Option(name: .customLong("mbs"), parsing: .unconditional, help: "Micro-batch size: sequences per forward pass on one dp rank.")
    var mbs = 1

    @Option(name: .customLong("seq_len"), parsing: .unconditional, help: "Sequence length in tokens (picotron's default is 1024).")
    var seqLen = 256

    @Option(name: .customLong("subset_name"), help: "Hub dataset subset; kept in the file, not used on CPU.")
    var subsetName: String?

    @Flag(name: .customLong("use_wandb"), help: "Log to Weights & Biases (picotron); here metrics are printed.")
    var useWandb = false

    @Flag(name: .customLong("use_cpu"), help: "Train on the CPU (accepted for picotron; always true here).")
    var useCPU = false

    @Flag(name: .customLong("use_fused_adam"), help: "Fused AdamW (a CUDA option in picotron; no effect here).")
    var useFusedAdam = false

    @Option(name: .customLong("hf_token"),
            help: "Hugging Face token, written to the file for picotron; not used here (nothing is downloaded).")
    var hfToken: String?

    @Flag(name: .customLong("force"), help: "Replace an existing <out_dir>/<exp_name>/config.json.")
    var force = false

    /// The flags as the library's options.
    var options: CreateConfigOptions {
        var o = CreateConfigOptions()
        (o.outDir, o.expName) = (outDir, expName)
        (o.tp, o.cp, o.dp, o.pp, o.ppEngine) = (tp, cp, dp, pp, ppEngine)
        (o.modelName, o.numHiddenLayers) = (modelName, numHiddenLayers)
        (o.numAttentionHeads, o.numKeyValueHeads) = (numAttentionHeads, numKeyValueHeads)
        (o.gradAccSteps, o.mbs, o.seqLen, o.subsetName) = (gradAccSteps, mbs, seqLen, subsetName)
        (o.useWandb, o.useCPU, o.useFusedAdam, o.hfToken, o.force) = (useWandb, useCPU, useFusedAdam, hfToken, force)
        return o
    }

    func run() throws {
        let (file, config) = try options.run()
        print("wrote \(file.path)")
        print(config.summary)
        for note in config.notes { print(note) }
    }
}
