#!/usr/bin/env python3
"""transformers_prefill.py - a long prompt's prefill on the CPU with Stem as
a transformers model's attention, then a few generated tokens.

    python3 examples/transformers_prefill.py [--tokens 16384] [--new 8]
        [--layers 2] [--threads 16] [--model PATH]

Without --model the model is Llama-shaped with random weights, built from
a config (hidden 4096, 32/8 heads of d 128, MLP 14336, bf16), so that the
example needs no download; --model loads a local checkpoint directory.
Stages timed: loading, the prefill (one forward over the prompt, filling
the KV cache: Stem's sparse attention), each decode step (exact attention
over the cache), and the prefill again with attn_implementation="sdpa".
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "python"))
import stem_attn.torch  # noqa: E402,F401  registers "stem" and "stem_dense"
from transformers import (AutoModelForCausalLM, DynamicCache,  # noqa: E402
                          LlamaConfig)


def load(a):
    if a.model:
        return AutoModelForCausalLM.from_pretrained(
            a.model, torch_dtype=torch.bfloat16, attn_implementation="stem")
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336,
                      num_attention_heads=32, num_key_value_heads=8,
                      head_dim=128, num_hidden_layers=a.layers,
                      vocab_size=32000, max_position_embeddings=a.tokens + a.new,
                      # Stem's settings travel in the config (stem_<field>)
                      stem_profile="angelslim", stem_alpha=0.7,
                      stem_keep_ratio=0.2)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="stem")
    return model.to(torch.bfloat16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--new", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--model", help="a local checkpoint directory")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)  # stem follows torch's thread count

    t0 = time.perf_counter()
    model = load(a).eval()
    print("load      %8.2f s" % (time.perf_counter() - t0))
    torch.manual_seed(0)
    prompt = torch.randint(0, model.config.vocab_size, (1, a.tokens))

    with torch.inference_mode():
        cache = DynamicCache()
        t0 = time.perf_counter()
        out = model(input_ids=prompt, past_key_values=cache, use_cache=True,
                    logits_to_keep=1)
        print("prefill   %8.2f s  (%d tokens, stem)" % (
            time.perf_counter() - t0, a.tokens))
        token = out.logits[:, -1:].argmax(-1)
        steps = []
        for _ in range(a.new):
            t0 = time.perf_counter()
            out = model(input_ids=token, past_key_values=out.past_key_values,
                        use_cache=True)
            steps.append(time.perf_counter() - t0)
            token = out.logits[:, -1:].argmax(-1)
        print("decode    %8.3f s per token (%d tokens, exact attention)"
              % (sum(steps) / len(steps), len(steps)))

        model.set_attn_implementation("sdpa")
        t0 = time.perf_counter()
        model(input_ids=prompt, use_cache=False, logits_to_keep=1)
        print("prefill   %8.2f s  (the same prompt with sdpa)"
              % (time.perf_counter() - t0))


if __name__ == "__main__":
    main()
