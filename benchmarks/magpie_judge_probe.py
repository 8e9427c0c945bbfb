"""Can the embedded backbone judge a pair (magpie's pair mode)? Four questions with one right and one wrong answer,
the right one first in two and second in two; prints the verdict as magpie reads it (free reply) and with the reply
started for it ("The better answer is Answer").

    python benchmarks/magpie_judge_probe.py
"""

from fac_lightning.backbone import load_backbone
from fac_lightning.chat import format_chat
from fac_lightning.config import component_config, compose_config, register_configs
from fac_lightning.generation import GENERATORS, SamplingParams, build_generator

PROBES = [  # (question, answer A, answer B, the right one)
    ("How do I boil an egg?", "Put the egg in boiling water for 9 minutes, then cool it in cold water.",
     "Eggs are boiled by freezing them for an hour in the oven.", "A"),
    ("What is the capital of France?", "The capital of France is Berlin, a city on the Seine.",
     "The capital of France is Paris.", "B"),
    ("How many legs does a spider have?", "A spider has eight legs.", "A spider has six legs, like all insects.", "A"),
    ("What is 12 times 3?", "12 times 3 is 42.", "12 times 3 is 36.", "B"),
]

if __name__ == "__main__":
    register_configs()
    cfg = compose_config(["task=reward", "synthesis=magpie"])
    backbone = load_backbone(cfg.backbone, cfg.paths.cache_dir)
    generator = build_generator(component_config(cfg.generator, GENERATORS), backbone)
    chats = [[{"role": "user", "content": cfg.prompts.judge.format(question=q, answer_a=a, answer_b=b)}]
             for q, a, b, _ in PROBES]
    free = generator.generate(chats, SamplingParams(temperature=0.0, max_new_tokens=8))
    started = generator.complete([format_chat(backbone.tokenizer, c, add_generation_prompt=True)
                                  + "The better answer is Answer" for c in chats],
                                 SamplingParams(temperature=0.0, max_new_tokens=3))
    print("| right | free reply (magpie reads it) | reply after 'The better answer is Answer' |\n|---|---|---|")
    for (_, _, _, right), (reply,), (forced,) in zip(PROBES, free, started, strict=True):
        print(f"| {right} | {reply!r} | {forced!r} |")
