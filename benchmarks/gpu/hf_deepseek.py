"""Hugging Face transformers on a DeepSeek config's shapes with random bf16 weights, on the GPU, for the inference engine's
comparisons (benchmarks/gpu/inference.sh):

    hf_deepseek.py checkpoint CONFIG OUT_DIR --layers N   a random checkpoint of the config's shapes cut to N layers, written
                                                          with per-expert Hugging Face names, and expected.safetensors:
                                                          input_ids [2, 40] and transformers' bf16 logits for them
    hf_deepseek.py bench CONFIG --batches 1,32 --prompt 128 --decode 32
                                                          prefill and decode speed of transformers' generate (greedy)
"""
import argparse
import json
import os
import time

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM


def make_model(config_path, layers=None):
    config_dict = json.load(open(config_path))
    if layers is not None:
        config_dict["num_hidden_layers"] = layers
    config = AutoConfig.for_model(**config_dict)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval()
    # Norms near 1 and a visible selection bias, as the reference fixtures draw them; matrices stay at the library's init.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn_like(b))
    return model, config_dict


def per_expert(state, hidden):
    """Hugging Face's per-expert names from transformers 5's fused expert tensors (gate_up_proj, down_proj), if any."""
    out = {}
    for name, value in state.items():
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            fused = value if value.shape[2] == hidden else value.transpose(1, 2)  # [E, 2I, H]
            gate, up = fused.chunk(2, dim=1)
            for e in range(fused.shape[0]):
                out[f"{prefix}{e}.gate_proj.weight"] = gate[e]
                out[f"{prefix}{e}.up_proj.weight"] = up[e]
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            fused = value if value.shape[1] == hidden else value.transpose(1, 2)  # [E, H, I]
            for e in range(fused.shape[0]):
                out[f"{prefix}{e}.down_proj.weight"] = fused[e]
        else:
            out[name] = value
    return out


def checkpoint(args):
    model, config_dict = make_model(args.config, args.layers)
    os.makedirs(args.out, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for name, buffer in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            state[name] = buffer.detach().float().contiguous()
    state = per_expert(state, config_dict["hidden_size"])
    state = {k: v.contiguous() for k, v in state.items() if "rotary_emb" not in k}
    save_file(state, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    json.dump(config_dict, open(os.path.join(args.out, "config.json"), "w"), indent=2)
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, config_dict["vocab_size"], (2, 40), generator=generator)
    with torch.no_grad():
        logits = model(input_ids.cuda()).logits.float().cpu()
    save_file({"input_ids": input_ids, "logits": logits.contiguous()}, os.path.join(args.out, "expected.safetensors"),
              metadata={"made_by": f"benchmarks/gpu/hf_deepseek.py, transformers {transformers.__version__}, torch {torch.__version__}, bf16"})
    names = sorted(state)
    print(f"wrote {args.out}: {len(names)} tensors, {sum(v.numel() for v in state.values()) / 1e9:.2f} B parameters, logits {tuple(logits.shape)}")


def bench(args):
    model, config_dict = make_model(args.config)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters in bf16, attention {model.config._attn_implementation}")
    print("| batch | prefill tokens/s | decode ms/step | decode tokens/s |")
    print("|---:|---:|---:|---:|")
    for batch in [int(b) for b in args.batches.split(",")]:
        ids = torch.randint(0, config_dict["vocab_size"], (batch, args.prompt), device="cuda")
        def run(new):
            torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.no_grad():
                model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
            torch.cuda.synchronize()
            return time.perf_counter() - start
        run(2)
        prefill = min(run(1) for _ in range(2))
        whole = min(run(args.decode + 1) for _ in range(2))
        step = (whole - prefill) / args.decode
        print(f"| {batch} | {batch * args.prompt / prefill:.0f} | {step * 1000:.2f} | {batch / step:.0f} |", flush=True)


parser = argparse.ArgumentParser()
sub = parser.add_subparsers(dest="command", required=True)
c = sub.add_parser("checkpoint")
c.add_argument("config")
c.add_argument("out")
c.add_argument("--layers", type=int, default=4)
b = sub.add_parser("bench")
b.add_argument("config")
b.add_argument("--batches", default="1,32")
b.add_argument("--prompt", type=int, default=128)
b.add_argument("--decode", type=int, default=32)
args = parser.parse_args()
checkpoint(args) if args.command == "checkpoint" else bench(args)
