// The reference single-process Llama, numerically the same model as Hugging Face's
// LlamaForCausalLM (eager attention, float32). Every parallel lesson is tested against it.
// Legend: B = batch, T = sequence, C = hidden, nh = query heads, nkv = key/value heads,
// hs = head size, I = MLP intermediate, V = vocabulary.

import TensorCore

/// Grouped-query self-attention with rotary positions.
public final class LlamaAttention: ParameterHolder {
    public var qProj, kProj, vProj, oProj: any LinearLayer
    /// Heads this instance computes (all of them here; a tensor-parallel rank's share there).
    public var heads, kvHeads: Int
    public let headDim: Int
    /// The attention itself: q `[B, T, nh, hs]`, k and v `[B, T, nkv, hs]` → `[B, T, nh, hs]`.
    /// Context parallelism replaces it (ring attention sees the other ranks' keys); the mask holds
    /// the tokens' global positions.
    public var attend: (_ q: Tensor, _ k: Tensor, _ v: Tensor, _ mask: AttentionMask) -> Tensor = { q, k, v, mask in
        Tensor.attention(q: q, k: k, v: v, mask: mask).out
    }

    public init(qProj: any LinearLayer, kProj: any LinearLayer, vProj: any LinearLayer, oProj: any LinearLayer,
                heads: Int, kvHeads: Int, headDim: Int) {
        (self.qProj, self.kProj, self.vProj, self.oProj) = (qProj, kProj, vProj, oProj)
        (self.heads, self.kvHeads, self.headDim) = (heads, kvHeads, headDim)
    }

    /// x `[B, T, C]` → `[B, T, C]` (under sequence parallelism `[B, T/tp, C]` in and out: the
    /// projections gather the sequence and o_proj scatters it, so T is read from q's projection).
    public func forward(_ x: Tensor, rope: RoPETable, mask: AttentionMask) -> Tensor {
        let qx = qProj.forward(x)                                                  // [B, T, nh·hs]
        let (b, t) = (qx.shape[0], qx.shape[1])
        let q = qx.reshaped([b, t, heads, headDim]).rope(rope)                     // [B, T, nh, hs]
        let k = kProj.forward(x).reshaped([b, t, kvHeads, headDim]).rope(rope)    // [B, T, nkv, hs]
        let v = vProj.forward(x).reshaped([b, t, kvHeads, headDim])               // [B, T, nkv, hs]
        let y = attend(q, k, v, mask)                                              // [B, T, nh, hs]
        return oProj.forward(y.reshaped([b, t, heads * headDim]))                  // [B, T, C]
    }

    public var namedParameters: [(String, Tensor)] {
        [("q_proj", qProj), ("k_proj", kProj), ("v_proj", vProj), ("o_proj", oProj)].flatMap { name, layer in
            layer.namedParameters.map { ("\(name).\($0.0)", $0.1) }
        }
    }
}

/// The SwiGLU MLP: down(silu(gate(x)) ⊙ up(x)).
public final class LlamaMLP: ParameterHolder {
    public var gateProj, upProj, downProj: any LinearLayer

    public init(gateProj: any LinearLayer, upProj: any LinearLayer, downProj: any LinearLayer) {
        (self.gateProj, self.upProj, self.downProj) = (gateProj, upProj, downProj)
    }

    /// x `[B, T, C]` → `[B, T, C]`.
    public func forward(_ x: Tensor) -> Tensor {
        let h = Tensor.swiglu(gate: gateProj.forward(x), up: upProj.forward(x))   // [B, T, I]
        return downProj.forward(h)                                                 // [B, T, C]
    }

    public var namedParameters: [(String, Tensor)] {
        [("gate_proj", gateProj), ("up_proj", upProj), ("down_proj", downProj)].flatMap { name, layer in
            layer.namedParameters.map { ("\(name).\($0.0)", $0.1) }
        }
    }
}

/// One pre-norm decoder block: h + attn(norm(h)), then + mlp(norm(·)).
public final class LlamaDecoderLayer: ParameterHolder {
    public var inputLayernorm: RMSNorm
    public var selfAttn: LlamaAttention
    public var postAttentionLayernorm: RMSNorm
    public var mlp: LlamaMLP

    /// Every linear layer of a decoder layer by its Hugging Face name inside `model.layers.N.`,
    /// as a path a parallel step can read and replace it through.
    public static let linears: [(name: String, path: ReferenceWritableKeyPath<LlamaDecoderLayer, any LinearLayer>)] = [
        ("self_attn.q_proj.weight", \.selfAttn.qProj), ("self_attn.k_proj.weight", \.selfAttn.kProj),
        ("self_attn.v_proj.weight", \.selfAttn.vProj), ("self_attn.o_proj.weight", \.selfAttn.oProj),
        ("mlp.gate_proj.weight", \.mlp.gateProj), ("mlp.up_proj.weight", \.mlp.upProj),
        ("mlp.down_proj.weight", \.mlp.downProj),
    ]

    public init(inputLayernorm: RMSNorm, selfAttn: LlamaAttention, postAttentionLayernorm: RMSNorm, mlp: LlamaMLP) {
        (self.inputLayernorm, self.selfAttn) = (inputLayernorm, selfAttn)
        (self.postAttentionLayernorm, self.mlp) = (postAttentionLayernorm, mlp)
    }

    /// h `[B, T, C]` → `[B, T, C]`.
    public func forward(_ h: Tensor, rope: RoPETable, mask: AttentionMask) -> Tensor {
        let a = h + selfAttn.forward(inputLayernorm.forward(h), rope: rope, mask: mask)   // [B, T, C]
        return a + mlp.forward(postAttentionLayernorm.forward(a))                          // [B, T, C]
    }

    public var namedParameters: [(String, Tensor)] {
        inputLayernorm.namedParameters.map { ("input_layernorm.\($0.0)", $0.1) }
            + selfAttn.namedParameters.map { ("self_attn.\($0.0)", $0.1) }
            + postAttentionLayernorm.namedParameters.map { ("post_attention_layernorm.\($0.0)", $0.1) }
            + mlp.namedParameters.map { ("mlp.\($0.0)", $0.1) }
    }
}
