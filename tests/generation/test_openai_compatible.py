"""The openai engine against a small fake OpenAI-compatible server on loopback."""

import pytest

from fac_lightning.generation import SamplingParams, build_generator
from fac_lightning.generation.openai_compatible import OpenAIConfig
from tests.fake_openai import fake_openai


@pytest.fixture
def server():
    with fake_openai(lambda body, i: f"echo {i}: {body['messages'][-1]['content']} STOP tail") as endpoint:
        yield endpoint


def test_openai_generator_sends_chat_requests_and_cuts_at_stop(server, monkeypatch):
    url, requests = server
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    gen = build_generator(OpenAIConfig(engine="openai", model="m", base_url=url, api_key_env="FAKE_KEY"))
    prompts = [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "bye"}]]
    out = gen.generate(prompts, SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=5, n=2, stop=[" STOP"]))
    assert out == [["echo 0: hello", "echo 1: hello"], ["echo 0: bye", "echo 1: bye"]]
    path, auth, body = requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"], body["n"]) == ("m", 0.7, 0.9, 5, 2)


def test_openai_generator_needs_url_and_model():
    with pytest.raises(ValueError, match="base_url"):
        build_generator(OpenAIConfig(engine="openai"))
