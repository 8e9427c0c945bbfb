"""Any OpenAI-compatible endpoint (a ``vllm serve`` server, a hosted API) through the ``openai`` client: each request
has a timeout and is retried with exponential backoff on a timeout, a lost connection, 408/409/429 and 5xx (the
client's own retry loop: 0.5 s doubling up to 8 s with jitter, or the server's ``Retry-After``); at most
``concurrency`` requests are in flight. A request that still fails raises ``GeneratorError`` naming the endpoint;
the synthesis stage keeps the units already finished, so the rerun resumes there. The key comes from the env."""

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import openai

from fac_lightning.artifacts import NOT_IN_KEY
from fac_lightning.checks import ConfigError, above, at_least
from fac_lightning.data.examples import Conversation
from fac_lightning.generation import GENERATORS
from fac_lightning.generation.base import GeneratorConfig, SamplingParams, cut_at_stop
from fac_lightning.requirements import Endpoint

ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
"""An environment variable's name, as shells write them (an API key, e.g. ``sk-…``, is not one)."""

NO_KEY = "EMPTY"
"""Sent when ``api_key_env`` is unset (the client needs some key; a local ``vllm serve`` checks none)."""

OPENAI_API = "https://api.openai.com/v1"
"""OpenAI's own endpoint (the official AlpacaEval judge's default)."""


class GeneratorError(RuntimeError):
    """A generator request that failed after its retries; the message names the endpoint and what to do."""


@dataclass
class OpenAIConfig(GeneratorConfig):
    base_url: str | None = None
    """e.g. http://localhost:8000/v1 (``vllm serve``) or https://api.openai.com/v1."""
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=NOT_IN_KEY)
    """Environment variable holding the key (keys are never written to a config)."""
    concurrency: int = field(default=8, metadata=NOT_IN_KEY)
    """Requests in flight at once."""
    timeout_s: float = field(default=120.0, metadata=NOT_IN_KEY)
    """Seconds one request may take, connecting included, before it counts as failed (and is retried)."""
    max_retries: int = field(default=6, metadata=NOT_IN_KEY)
    """Retries of a failed request (timeout, lost connection, 408/409/429/5xx) before the run stops."""

    def __post_init__(self):
        if not self.base_url or not self.model:
            raise ValueError("generator=openai needs generator.base_url and generator.model")
        if not ENV_NAME.fullmatch(self.api_key_env):  # a key pasted here would land in every config file: not shown
            raise ConfigError("api_key_env", "<not shown>", "must be the NAME of the environment variable that holds "
                              "the API key (e.g. OPENAI_API_KEY), never the key itself")
        at_least(self, 1, "concurrency")
        at_least(self, 0, "max_retries")
        above(self, 0, "timeout_s")

    def requirements(self, data_dir):
        return [Endpoint("generator.base_url", self.base_url)]


@GENERATORS.register("openai", OpenAIConfig)
class OpenAICompatibleGenerator:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, concurrency: int = 8,
                 timeout_s: float = 120.0, max_retries: int = 6):
        self.base_url, self.model, self.concurrency = base_url.rstrip("/"), model, concurrency
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key or NO_KEY, timeout=timeout_s,
                                    max_retries=max_retries)
        self.name = f"openai:{model}"

    @classmethod
    def from_config(cls, cfg: OpenAIConfig, backbone=None) -> "OpenAICompatibleGenerator":
        return cls(cfg.base_url, cfg.model, os.environ.get(cfg.api_key_env), cfg.concurrency, cfg.timeout_s,
                   cfg.max_retries)

    def request(self, create, params: SamplingParams, **payload) -> list:
        """The choices of one request (``create``: the client's chat or text completions), or a ``GeneratorError``."""
        body = {"model": self.model, "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_new_tokens, "n": params.n, "seed": params.seed, **payload}
        if params.stop:
            body["stop"] = params.stop
        tried = f"{1 + self.max_retries} attempt(s)"
        try:
            return create(**body).choices
        except openai.APITimeoutError:
            problem = f"did not answer within generator.timeout_s={self.timeout_s:g} s ({tried})"
        except openai.APIConnectionError as e:
            problem = f"could not be reached ({e.__cause__ or e}; {tried})"
        except openai.APIStatusError as e:
            problem = f"answered HTTP {e.status_code} ({tried}): {str(e.message)[:300]}"
        raise GeneratorError(f"generator=openai: the endpoint {self.base_url} (model {self.model!r}) {problem}. "
                             "Check that the server is up (e.g. curl it), or raise generator.timeout_s / "
                             "generator.max_retries; rerun to resume: finished units are kept") from None

    def _map(self, fn, items) -> list:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    def generate(self, prompts: list[Conversation], params: SamplingParams) -> list[list[str]]:
        def one(prompt):
            choices = self.request(self.client.chat.completions.create, params, messages=prompt)
            return [cut_at_stop(c.message.content or "", params.stop).strip() for c in choices]
        return self._map(one, prompts)

    def complete(self, texts: list[str], params: SamplingParams) -> list[list[str]]:
        def one(text):
            choices = self.request(self.client.completions.create, params, prompt=text)
            return [cut_at_stop(c.text or "", params.stop).strip() for c in choices]
        return self._map(one, texts)
