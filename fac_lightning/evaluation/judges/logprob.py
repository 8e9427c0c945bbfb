"""The ``logprob`` judge: a local chat model asked alpaca_eval's own prompt of an annotator that reads log-probabilities
(default ``weighted_alpaca_eval_gpt4_turbo``: its prompt ``alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt`` names the
two outputs ``m`` and ``M`` and asks for the better one's identifier), scored as that annotator's ``logprob_parser``
scores GPT-4-Turbo: from the next-token log-probabilities of the two identifiers after the opened assistant turn,
P(output_1) = p(m) / (p(m) + p(M)), preference = 2 - P(output_1). A small model prefers one position whatever the
answers say, so each pair is asked in both orders (reference first, then the model's output first) and the two
preferences are averaged. The prompt is alpaca_eval's ChatML split into messages (``utils.prompt_to_chatml``) and
rendered with the judge's own chat template."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from rich.progress import track

from fac_lightning.checks import at_least
from fac_lightning.config import BackboneConfig
from fac_lightning.evaluation.judges import JUDGES, Judge, JudgeConfig, annotator_requirements, cache_dir_of

BACKBONE_CONFS = Path(__file__).resolve().parents[3] / "conf" / "backbone"


@dataclass
class LogprobJudgeConfig(JudgeConfig):
    model: str = "smollm2_135m"
    """A ``conf/backbone`` option (loaded as train.py loads backbones; default: the embedded SmolLM2-135M-Instruct)
    or a hub id / local folder of a chat model."""
    annotator: str = "weighted_alpaca_eval_gpt4_turbo"
    """The alpaca_eval annotator (``evaluators_configs/<name>/configs.yaml``) whose prompt and identifier tokens are
    used; it must parse log-probabilities (``fn_completion_parser: logprob_parser``)."""
    max_answer_tokens: int = 512
    """Each answer is cut to this many judge tokens before it is put in the prompt (GPT-4-Turbo reads all of it; the
    mirror's reference answers average ~2,000 characters, ~500 tokens)."""
    cache_dir: str | None = None
    """Converted backbones; None = ``paths.cache_dir``'s default (``$FAC_CACHE_DIR``, else
    ``~/.cache/fac_lightning``)."""

    def __post_init__(self):
        at_least(self, 1, "max_answer_tokens")

    def requirements(self, data_dir):
        return annotator_requirements(self.annotator)


def annotator_prompt(annotator: str) -> tuple[str, str, list[str]]:
    """(prompt template, the output_1 identifier token, all identifier tokens) of an alpaca_eval annotator."""
    from alpaca_eval.constants import EVALUATORS_CONFIG_DIR

    path = Path(EVALUATORS_CONFIG_DIR) / annotator / "configs.yaml"
    if not path.exists():
        raise FileNotFoundError(f"benchmark.judge.annotator={annotator!r}: alpaca_eval has no annotator config {path}")
    config = yaml.safe_load(path.read_text())[annotator]
    if config.get("fn_completion_parser") != "logprob_parser":
        raise ValueError(f"benchmark.judge.annotator={annotator!r} does not read log-probabilities (its parser is "
                         f"{config.get('fn_completion_parser')!r}, the logprob judge needs logprob_parser)")
    parser = config["completion_parser_kwargs"]
    template = (Path(EVALUATORS_CONFIG_DIR) / config["prompt_template"]).read_text()
    return template, parser["numerator_token"], list(parser["denominator_tokens"])


def judge_backbone_config(model: str) -> BackboneConfig:
    from omegaconf import OmegaConf

    option = BACKBONE_CONFS / f"{model}.yaml"
    if option.exists():
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(BackboneConfig), OmegaConf.load(option)))
    return BackboneConfig(name=Path(model).name, model=model, layer=1)


@JUDGES.register("logprob", LogprobJudgeConfig)
class LogprobJudge(Judge):
    def __init__(self, cfg: LogprobJudgeConfig):
        super().__init__(cfg)
        from fac_lightning.backbone import load_backbone

        self.template, self.first, identifiers = annotator_prompt(cfg.annotator)
        self.backbone = load_backbone(judge_backbone_config(cfg.model), cache_dir_of(cfg.cache_dir))
        tokenizer = self.backbone.tokenizer
        self.token_ids = {}
        for identifier in identifiers:
            ids = tokenizer(identifier, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise ValueError(f"benchmark.judge.model={cfg.model}: the identifier {identifier!r} of annotator "
                                 f"{cfg.annotator} is {len(ids)} tokens of its tokenizer (one is needed)")
            self.token_ids[identifier] = ids[0]

    @property
    def label(self) -> str:
        return f"logprob:{self.backbone.cfg.name}"

    def cut(self, answer: str) -> str:
        ids = self.backbone.tokenizer(answer, add_special_tokens=False)["input_ids"]
        return answer if len(ids) <= self.cfg.max_answer_tokens else \
            self.backbone.tokenizer.decode(ids[: self.cfg.max_answer_tokens])

    def prompt_ids(self, instruction: str, output_1: str, output_2: str) -> list[int]:
        from alpaca_eval.utils import make_prompts, prompt_to_chatml

        frame = pd.DataFrame([{"instruction": instruction, "output_1": output_1, "output_2": output_2}])
        messages = prompt_to_chatml(make_prompts(frame, self.template)[0][0])
        text = self.backbone.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.backbone.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.inference_mode()
    def p_first(self, pairs: list[tuple[str, str, str]]) -> np.ndarray:
        """(N,) p(first identifier) / p(any identifier) after each (instruction, output_1, output_2) prompt."""
        label_ids = torch.tensor([self.token_ids[self.first]] + [i for t, i in self.token_ids.items()
                                                                 if t != self.first])
        p_N = np.zeros(len(pairs))
        model = self.backbone.model
        for n in track(range(len(pairs)), description=f"judging ({self.label})", disable=len(pairs) < 2):
            ids_1T = torch.tensor([self.prompt_ids(*pairs[n])], device=self.backbone.device)
            logits_V = model(input_ids=ids_1T, logits_to_keep=1).logits[0, -1].float()
            logp_L = torch.log_softmax(logits_V, dim=-1)[label_ids.to(logits_V.device)]
            p_N[n] = torch.softmax(logp_L, dim=-1)[0].item()
        return p_N

    def preferences(self, instructions: list[str], references: list[str], outputs: list[str]) -> np.ndarray:
        references, outputs = [self.cut(a) for a in references], [self.cut(a) for a in outputs]
        n = len(instructions)
        p_2N = self.p_first(list(zip(instructions, references, outputs, strict=True))
                            + list(zip(instructions, outputs, references, strict=True)))
        reference_first_N = 2.0 - p_2N[:n]  # p(m) = P(the reference, output_1, is better)
        output_first_N = 1.0 + p_2N[n:]  # p(m) = P(the model's output, shown first, is better)
        return (reference_first_N + output_first_N) / 2
