// How tensor parallelism cuts every weight of a Llama, declared once (picotron's
// `module_linear_name_stype_mapping_list`). This one table drives applying tensor parallelism to
// a model, building a sharded model straight from the seed, the lesson's cut table, and the
// checkpoint's gather and scatter.
// Legend: C = hidden, nh = query heads, nkv = key/value heads, hs = head size, I = MLP
// intermediate, V = vocabulary, tp = ranks. A linear weight is [out, in].
//
//   attention  q, k, v: column   [nh·hs, C] / [nkv·hs, C] cut by output rows: whole heads per rank
//              o:       row      [C, nh·hs] cut by input columns: the heads this rank computed
//   MLP        gate, up: column  [I, C];  down: row [C, I]
//   embedding  vocab             [V, C] cut by vocabulary rows
//   LM head    column            [V, C]: logits [N, V/tp] for the vocab-parallel loss
//   norms      replicated        [C] on every rank
//
// Sequence parallelism is an option of this plan, not another model: the same cuts, with each
// style's communication replaced by its sequence version (`communication(of:sequenceParallel:)`).

/// How one weight is held across the tensor-parallel ranks.
public enum TensorParallelStyle: String, Sendable {
    /// Output rows cut: each rank computes a slice of the output features.
    case column
    /// Input columns cut: each rank computes a partial sum of every output feature.
    case row
    /// Vocabulary rows cut: each rank looks up the tokens it owns.
    case vocab
    /// Whole on every rank.
    case replicated

    /// Which dimension of the weight is cut.
    public var cut: ShardSpec.Cut {
        switch self {
        case .column, .vocab: return .rows
        case .row: return .columns
        case .replicated: return .replicated
        }
    }
}

public enum TensorParallelPlan {
    /// One weight: its Hugging Face name (inside `model.layers.N.` for a decoder layer), its style,
    /// and for a column-parallel projection the activation it reads: projections that read the
    /// same one share one `f`, so its all-reduce in backward happens once.
    public struct Entry: Sendable {
        public let name: String
        public let style: TensorParallelStyle
        public let input: String?
    }

    /// Every weight of a decoder layer.
    public static let layer: [Entry] = [
        Entry(name: "self_attn.q_proj.weight", style: .column, input: "attention input"),
        Entry(name: "self_attn.k_proj.weight", style: .column, input: "attention input"),
        Entry(name: "self_attn.v_proj.weight", style: .column, input: "attention input"),
        Entry(name: "self_attn.o_proj.weight", style: .row, input: nil),
        Entry(name: "mlp.gate_proj.weight", style: .column, input: "MLP input"),
        Entry(name: "mlp.up_proj.weight", style: .column, input: "MLP input"),
        Entry(name: "mlp.down_proj.weight", style: .row, input: nil),
        Entry(name: "input_layernorm.weight", style: .replicated, input: nil),
        Entry(name: "post_attention_layernorm.weight", style: .replicated, input: nil),
    ]

    /// The weights outside the decoder layers.
    public static let model: [Entry] = [
        Entry(name: "model.embed_tokens.weight", style: .vocab, input: nil),
        Entry(name: "model.norm.weight", style: .replicated, input: nil),
        Entry(name: "lm_head.weight", style: .column, input: "final hidden states"),
    ]

    /// The entry of a parameter, by its full Hugging Face name (`model.layers.3.mlp.up_proj.weight`).
    public static func entry(of name: String) -> Entry? {
        let prefix = layerPrefix(of: name)
        return prefix.isEmpty ? model.first { $0.name == name } : layer.first { $0.name == name.dropFirst(prefix.count) }
    }

    /// `model.layers.3.` for a decoder layer's parameter, "" for any other.
    public static func layerPrefix(of name: String) -> String {
        let parts = name.split(separator: ".", maxSplits: 3)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", Int(parts[2]) != nil else { return "" }
        return "model.layers.\(parts[2])."
    }

    /// The style of a parameter; a name the table does not know is replicated.
    public static func style(of name: String) -> TensorParallelStyle { entry(of: name)?.style ?? .replicated }

    /// The communication a weight of `style` brings into the forward (its backward is the mirror image):
    /// Megatron's f and g, or under sequence parallelism their versions along the sequence.
    public static func communication(of style: TensorParallelStyle, sequenceParallel: Bool) -> String {
        switch (style, sequenceParallel) {
        case (.column, false): return "f before: identity (all-reduce in backward)"
        case (.column, true): return "all-gather T before (reduce-scatter in backward)"
        case (.row, false), (.vocab, false): return "g after: all-reduce (identity in backward)"
        case (.row, true), (.vocab, true): return "reduce-scatter T after (all-gather in backward)"
        case (.replicated, false): return "none: inputs and gradients equal on every rank"
        case (.replicated, true): return "input T/tp tokens; weight gradient summed over tp"
        }
    }

    /// Which part of the parameter `name` (of full shape `fullShape`) rank `rank` of `size` holds.
    public static func spec(of name: String, fullShape: [Int], rank: Int, size: Int) -> ShardSpec {
        ShardSpec(cut: style(of: name).cut, fullShape: fullShape, rank: rank, size: size)
    }
}
