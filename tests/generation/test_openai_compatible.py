"""The openai engine against a small fake OpenAI-compatible server on loopback."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from fac_lightning.generation import SamplingParams, build_generator
from fac_lightning.generation.openai_compatible import OpenAIConfig


class FakeChatCompletions(BaseHTTPRequestHandler):
    requests: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChatCompletions.requests.append((self.path, self.headers.get("Authorization"), body))
        last = body["messages"][-1]["content"]
        choices = [{"message": {"role": "assistant", "content": f"echo {i}: {last} STOP tail"}} for i in range(body["n"])]
        payload = json.dumps({"choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeChatCompletions)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_openai_generator_sends_chat_requests_and_cuts_at_stop(server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    gen = build_generator(OpenAIConfig(engine="openai", model="m", base_url=server, api_key_env="FAKE_KEY"))
    prompts = [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "bye"}]]
    out = gen.generate(prompts, SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=5, n=2, stop=[" STOP"]))
    assert out == [["echo 0: hello", "echo 1: hello"], ["echo 0: bye", "echo 1: bye"]]
    path, auth, body = FakeChatCompletions.requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"], body["n"]) == ("m", 0.7, 0.9, 5, 2)


def test_openai_generator_needs_url_and_model():
    with pytest.raises(ValueError, match="base_url"):
        build_generator(OpenAIConfig(engine="openai"))
