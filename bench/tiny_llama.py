"""tiny_llama.py - a Llama-shaped decoder in plain PyTorch that calls its
attention function the way transformers' LlamaAttention does, for
bench_transformers.py where transformers is not installed (and for its
test).

What it shares with transformers' Llama, so that an attention function
registered here sees what it would see there:
  - the call: fn(module, query, key, value, attention_mask, dropout=0.0,
    scaling=module.scaling) -> (attn_output [B, L, Hq, d], weights);
  - the layouts: query the transposed view of q_proj's output
    [B, L, Hq, d] -> [B, Hq, L, d] after rotary embedding, key and value
    [B, Hkv, L, d] (grouped-query attention), attention_mask None (the
    plain causal mask, as transformers passes it to "sdpa" and to the stem
    functions when there is no padding);
  - the module's attributes: config, layer_idx, head_dim, scaling,
    num_key_value_groups, is_causal, training;
  - the model's surface the benchmark uses: model.model(input_ids=...,
    use_cache=False).last_hidden_state, model(...).logits, model.lm_head,
    model.config, model.set_attn_implementation(name), and a registry
    with register(name, fn) (AttentionInterface's method).
RMS norms in float32, rotary embedding (theta 500000), SiLU-gated MLP.
"""
import types

import torch
import torch.nn.functional as F

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def repeat_kv(x, groups):
    """[B, Hkv, L, d] -> [B, Hkv * groups, L, d], each kv head repeated."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def math_attention(query, key, value, scaling, allowed=None):
    """Attention by its definition: softmax in float32 over the keys each
    query may see (allowed [L, L] or [H, L, L] bool, True = attend; None =
    causal), result in query's dtype, [B, H, L, d]."""
    groups = query.shape[1] // key.shape[1]
    k = repeat_kv(key, groups)
    v = repeat_kv(value, groups)
    lq, lk = query.shape[2], key.shape[2]
    if allowed is None:
        allowed = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq)
    s = torch.matmul(query, k.transpose(2, 3)).float() * scaling
    s = s.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(s, dim=-1).to(query.dtype)
    return torch.matmul(p, v)


def eager_attention(module, query, key, value, attention_mask, dropout=0.0,
                    scaling=None, **kwargs):
    """transformers' "eager": products in the tensors' dtype, softmax in
    float32."""
    out = math_attention(query, key, value, scaling)
    return out.transpose(1, 2).contiguous(), None


def sdpa_attention(module, query, key, value, attention_mask, dropout=0.0,
                   scaling=None, is_causal=None, **kwargs):
    """transformers' "sdpa": torch's scaled_dot_product_attention, causal,
    the kv heads repeated; the math above where torch has none (before
    2.0)."""
    if not HAS_SDPA:
        return eager_attention(module, query, key, value, attention_mask,
                               dropout, scaling)
    groups = module.num_key_value_groups
    out = F.scaled_dot_product_attention(
        query, repeat_kv(key, groups), repeat_kv(value, groups),
        attn_mask=None, dropout_p=0.0, is_causal=query.shape[2] > 1,
        scale=scaling)
    return out.transpose(1, 2).contiguous(), None


class Registry:
    """Attention functions by name (transformers' AttentionInterface)."""

    def __init__(self):
        self.fns = {"eager": eager_attention, "sdpa": sdpa_attention}

    def register(self, name, fn):
        self.fns[name] = fn


ATTENTION = Registry()


class RMSNorm(torch.nn.Module):
    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(torch.nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = (config.num_attention_heads //
                                     config.num_key_value_heads)
        self.scaling = self.head_dim ** -0.5
        self.is_causal = True
        hq, hkv, d = (config.num_attention_heads,
                      config.num_key_value_heads, config.head_dim)
        self.q_proj = torch.nn.Linear(config.hidden_size, hq * d, bias=False)
        self.k_proj = torch.nn.Linear(config.hidden_size, hkv * d, bias=False)
        self.v_proj = torch.nn.Linear(config.hidden_size, hkv * d, bias=False)
        self.o_proj = torch.nn.Linear(hq * d, config.hidden_size, bias=False)

    def forward(self, x, cos, sin):
        shape = x.shape[:-1] + (-1, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        fn = ATTENTION.fns[self.config._attn_implementation]
        out, _ = fn(self, q, k, v, None, dropout=0.0, scaling=self.scaling)
        return self.o_proj(out.reshape(x.shape[:-1] + (-1,)).contiguous())


class Layer(torch.nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size)
        m = config.intermediate_size
        self.gate_proj = torch.nn.Linear(config.hidden_size, m, bias=False)
        self.up_proj = torch.nn.Linear(config.hidden_size, m, bias=False)
        self.down_proj = torch.nn.Linear(m, config.hidden_size, bias=False)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Decoder(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed_tokens = torch.nn.Embedding(config.vocab_size,
                                               config.hidden_size)
        self.layers = torch.nn.ModuleList(
            Layer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size)

    def forward(self, input_ids, use_cache=False):
        x = self.embed_tokens(input_ids)
        d = self.config.head_dim
        inv = 1.0 / (self.config.rope_theta **
                     (torch.arange(0, d, 2).float() / d))
        pos = torch.arange(input_ids.shape[1]).float()
        ang = torch.outer(pos, inv)
        ang = torch.cat((ang, ang), dim=-1)
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return types.SimpleNamespace(last_hidden_state=self.norm(x))


class CausalLM(torch.nn.Module):
    """Decoder + LM head, with transformers' surface (see above)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = Decoder(config)
        self.lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size,
                                       bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def set_attn_implementation(self, name):
        if name not in ATTENTION.fns:
            raise ValueError("no attention implementation %r" % name)
        self.config._attn_implementation = name

    def forward(self, input_ids, use_cache=False):
        h = self.model(input_ids=input_ids).last_hidden_state
        return types.SimpleNamespace(logits=self.lm_head(h))


def config(hidden_size, intermediate_size, num_attention_heads,
           num_key_value_heads, head_dim, num_hidden_layers, vocab_size,
           rope_theta=500000.0):
    """The config fields the model reads (LlamaConfig's names)."""
    if num_attention_heads % num_key_value_heads:
        raise ValueError("%d query heads are not groups of %d kv heads"
                         % (num_attention_heads, num_key_value_heads))
    return types.SimpleNamespace(
        hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads, head_dim=head_dim,
        num_hidden_layers=num_hidden_layers, vocab_size=vocab_size,
        rope_theta=rope_theta, _attn_implementation="sdpa")

