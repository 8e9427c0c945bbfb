"""Any OpenAI-compatible chat-completions endpoint (a vLLM server, a hosted API); the key comes from the env."""

import json
import os
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fac_lightning.checks import ConfigError, at_least
from fac_lightning.data.conversations import Conversation
from fac_lightning.generation import GENERATORS
from fac_lightning.generation.base import GeneratorConfig, SamplingParams, cut_at_stop

ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
"""An environment variable's name, as shells write them (an API key, e.g. ``sk-…``, is not one)."""


@dataclass
class OpenAIConfig(GeneratorConfig):
    base_url: str | None = None
    """e.g. http://localhost:8000/v1 (a vLLM server) or https://api.openai.com/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key (keys are never written to a config)."""
    concurrency: int = 8
    """Requests in flight at once."""

    def __post_init__(self):
        if not self.base_url or not self.model:
            raise ValueError("generator=openai needs generator.base_url and generator.model")
        if not ENV_NAME.fullmatch(self.api_key_env):  # a key pasted here would land in every config file: not shown
            raise ConfigError("api_key_env", "<not shown>", "must be the NAME of the environment variable that holds "
                              "the API key (e.g. OPENAI_API_KEY), never the key itself")
        at_least(self, 1, "concurrency")


@GENERATORS.register("openai", OpenAIConfig)
class OpenAICompatibleGenerator:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, concurrency: int = 8):
        self.base_url, self.model, self.api_key, self.concurrency = base_url.rstrip("/"), model, api_key, concurrency
        self.name = f"openai:{model}"

    @classmethod
    def from_config(cls, cfg: OpenAIConfig, backbone=None) -> "OpenAICompatibleGenerator":
        return cls(cfg.base_url, cfg.model, os.environ.get(cfg.api_key_env), cfg.concurrency)

    def post(self, endpoint: str, payload: dict, params: SamplingParams) -> list[dict]:
        body = {"model": self.model, "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_new_tokens, "n": params.n, "seed": params.seed, **payload}
        if params.stop:
            body["stop"] = params.stop
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.base_url}/{endpoint}", json.dumps(body).encode(), headers)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())["choices"]

    def _map(self, fn, items) -> list:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    def generate(self, prompts: list[Conversation], params: SamplingParams) -> list[list[str]]:
        def one(prompt):
            choices = self.post("chat/completions", {"messages": prompt}, params)
            return [cut_at_stop(c["message"]["content"] or "", params.stop).strip() for c in choices]
        return self._map(one, prompts)

    def complete(self, texts: list[str], params: SamplingParams) -> list[list[str]]:
        def one(text):
            choices = self.post("completions", {"prompt": text}, params)
            return [cut_at_stop(c["text"], params.stop).strip() for c in choices]
        return self._map(one, texts)
