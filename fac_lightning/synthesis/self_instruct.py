"""Self-Instruct, Alpaca variant (Taori et al. 2023): a numbered list of seed demonstrations plus generated ones, the
model writes the next item; ROUGE-L novelty filter (< 0.7 against seeds and kept rows) and the keyword blacklist.

Every demonstration is a whole row as the task's template writes it (``RowFormat.demo``): a query for toxicity; for
preference pairs the JSON ``{"chosen", "rejected"}`` of a seed pair, so the model writes a new pair (Self-Instruct
generates instructions, then their instances; here one item holds the question and both answers). With
question-first prompts (``synthesis/question_first.py``; the reward and steering defaults) the demonstrations are
the seed rows' questions (an A/B item's without its choices) and the generator answers each new question into a row.
The novelty filter and the blacklist look at the item's user message."""

import random
import re
from dataclasses import dataclass

from omegaconf import MISSING
from rouge_score import rouge_scorer

from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy
from fac_lightning.synthesis.question_first import QuestionFirstPrompts

# stanford_alpaca generate_instruction.py's blacklist (Self-Instruct's plus video/audio/music/flowchart/diagram)
BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
             "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
BLACKLISTED = re.compile(rf"\b({'|'.join(map(re.escape, BLACKLIST))})\b", re.IGNORECASE)
"""Alpaca's ``find_word_in_string``: a blacklisted word at word boundaries, so punctuation does not hide it."""


def blacklisted(text: str) -> bool:
    return BLACKLISTED.search(text) is not None or not text[:1].isalnum() or not text[:1].isascii()


@dataclass
class SelfInstructConfig(GenerativeConfig):
    temperature: float = 1.0
    """Alpaca decodes at T=1.0, top-p 1.0."""
    top_p: float = 1.0
    seed_demos: int = 3
    """Seed demonstrations per prompt (Alpaca: 3)."""
    generated_demos: int = 2
    """Machine-generated demonstrations added once available."""


@dataclass
class SelfInstructPrompts(QuestionFirstPrompts):
    system: str = MISSING
    self_instruct: str = MISSING
    """Continue a numbered list. Placeholders: {examples}, {next_index}."""


@STRATEGIES.register("self_instruct", SelfInstructConfig)
class SelfInstructStrategy(Strategy):
    Prompts = SelfInstructPrompts
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")

    def start(self) -> None:
        if not self.context.seed_demos:
            raise ValueError("synthesis=self_instruct needs the task's seed part for its demonstrations")
        self.rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def prompt(self, rng: random.Random, generated: list[str]) -> str:
        demos = rng.sample(self.context.seed_demos, min(self.cfg.seed_demos, len(self.context.seed_demos)))
        demos += rng.sample(generated, min(self.cfg.generated_demos, len(generated)))
        rng.shuffle(demos)
        examples = "\n".join(f"{i + 1}. {d}" for i, d in enumerate(demos))
        return self.prompts.self_instruct.format(examples=examples, next_index=len(demos) + 1)

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        rng = random.Random(self.unit_seed(unit))
        generated = [self.demo(r) for r in writer.rows + writer.pending]
        prompts = [self.prompt(rng, generated) for _ in range(self.cfg.prompts_per_call)]
        outputs = self.generator.generate([self.chat(p) for p in prompts], self.params(unit))
        for prompt, raw in zip(prompts, self.candidates_from([raw for (raw,) in outputs], unit)):
            fields, _ = self.format.parse(raw)  # an unparseable one is rejected, with its reason, by writer.offer
            text = self.format.query(fields) if fields else ""
            if text and blacklisted(text):
                writer.reject("blacklisted")
            elif any(self.rouge.score(s, text)["rougeL"].fmeasure > self.cfg.near_duplicate_rouge
                     for s in self.context.seed_texts):
                writer.reject("near_duplicate_of_seed")
            else:
                writer.offer(raw, self.provenance(unit, prompt))
