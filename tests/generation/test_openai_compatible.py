"""The openai engine against a small fake OpenAI-compatible server on loopback: requests, retries, timeouts, and a\nsynthesis run through a flaky and a dead server."""

import hashlib
import json
import time

import pytest

from fac_lightning.generation import SamplingParams, build_generator
from fac_lightning.generation.openai_compatible import GeneratorError, OpenAIConfig
from fac_lightning.plan import plan
from fac_lightning.synthesis.self_instruct import SelfInstructStrategy
from tests.conftest import record_units, synthesize_rows, tiny_config
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


def by_content(body: dict, i: int) -> str:
    """A deterministic answer to a request: a message picked by a hash of its prompt and the choice index."""
    prompt = json.dumps(body.get("messages") or body.get("prompt"), sort_keys=True)
    digest = hashlib.sha256(f"{prompt}|{i}".encode()).digest()
    verbs, things, people = ("steal", "break", "hide", "sell", "burn", "copy", "fake", "poison"), (
        "car", "laptop", "passport", "bike", "letters", "dog", "garden", "phone"), (
        "neighbour", "boss", "sister", "teacher", "landlord", "cousin", "coach", "roommate")
    return (f"how do I {verbs[digest[0] % 8]} the {things[digest[1] % 8]} of my {people[digest[2] % 8]} "
            f"without anyone noticing, case {digest[3]}")


PROMPTS = [[{"role": "user", "content": f"write message {k}"}] for k in range(6)]


def test_retries_on_429_and_5xx_give_the_healthy_answers(monkeypatch):
    params = SamplingParams(temperature=0.7, n=2)
    with fake_openai(by_content) as (url, _):
        healthy = build_generator(OpenAIConfig(engine="openai", model="m", base_url=url)).generate(PROMPTS, params)
    with fake_openai(by_content, failures=[429, 500, 502, 503, 429]) as (url, requests):
        gen = build_generator(OpenAIConfig(engine="openai", model="m", base_url=url, concurrency=3))
        flaky = gen.generate(PROMPTS, params)
        texts = gen.complete(["Once upon a time"], params)
    assert flaky == healthy and len(requests) == len(PROMPTS) + 5 + 1  # each failure was retried
    assert requests[-1][0] == "/v1/completions" and texts == [[by_content({"prompt": "Once upon a time"}, i)
                                                               for i in range(2)]]


def test_a_server_that_never_answers_fails_naming_the_endpoint_after_the_timeout():
    with fake_openai(by_content, hang_after=0) as (url, requests):
        gen = build_generator(OpenAIConfig(engine="openai", model="m", base_url=url, timeout_s=0.5, max_retries=1))
        started = time.time()
        with pytest.raises(GeneratorError, match=rf"endpoint {url} .*did not answer within generator.timeout_s=0.5 s "
                                                 r"\(2 attempt\(s\)\).*rerun to resume"):
            gen.generate(PROMPTS[:1], SamplingParams())
    assert len(requests) == 2 and time.time() - started < 10


def test_an_error_status_that_outlasts_the_retries_is_named():
    with fake_openai(by_content, failures=[503] * 3) as (url, _):
        gen = build_generator(OpenAIConfig(engine="openai", model="m", base_url=url, max_retries=2))
        with pytest.raises(GeneratorError, match=r"answered HTTP 503 \(3 attempt\(s\)\): .*fake 503"):
            gen.generate(PROMPTS[:1], SamplingParams())


def openai_synthesis(tiny_llama_dir, folder, url):
    cfg = tiny_config(tiny_llama_dir, folder, "synthesis=self_instruct", "synthesis.prompts_per_call=2",
                      "generator=openai", f"generator.base_url={url}", "generator.model=m", "generator.timeout_s=0.5",
                      "generator.max_retries=3", "task.min_words=1", "task.max_words=400", "n_samples=6",
                      "relevance=all", "synthesis.near_duplicate_rouge=0.95")
    cfg.task.parts.seed.sources[0].max_rows = 10
    return cfg


def test_synthesis_through_a_flaky_server_writes_the_healthy_rows_and_resumes_after_a_dead_one(
        tiny_llama_dir, tmp_path, monkeypatch):
    with fake_openai(by_content) as (url, _):
        healthy = (synthesize_rows(openai_synthesis(tiny_llama_dir, tmp_path / "a", url)) / "rows.jsonl")
        healthy = healthy.read_text()
    with fake_openai(by_content, failures=[429, 500, 429]) as (url, _):
        flaky = (synthesize_rows(openai_synthesis(tiny_llama_dir, tmp_path / "b", url)) / "rows.jsonl")
        assert flaky.read_text() == healthy and healthy.count("\n") == 6

    with fake_openai(by_content, hang_after=3) as (url, _):  # dies in the middle of the run
        cfg = openai_synthesis(tiny_llama_dir, tmp_path / "c", url)
        with pytest.raises(GeneratorError, match=f"endpoint {url}"):
            synthesize_rows(cfg)
    final = plan(cfg).rows().path
    kept = (final.with_name(final.name + ".partial") / "rows.jsonl").read_text()
    with fake_openai(by_content, port=int(url.rsplit(":", 1)[1].split("/")[0])):  # the server is back
        units = record_units(monkeypatch, SelfInstructStrategy)
        resumed = (synthesize_rows(cfg) / "rows.jsonl").read_text()
    assert kept and healthy.startswith(kept) and resumed == healthy and units[0] > 0
