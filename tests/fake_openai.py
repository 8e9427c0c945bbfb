"""A fake OpenAI-compatible chat-completions endpoint on loopback, for the tests of the openai engine, of secrets and
of alpaca_eval's official annotator (which reads the answer's log-probabilities and the token usage)."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI(BaseHTTPRequestHandler):
    """Records each request as (path, Authorization header, JSON body) in ``requests`` and answers each of the
    body's ``n`` completions (1 when the body names none) with ``reply(body, i)``: the message's text, or a dict of
    it (``content``) and the choice's ``logprobs`` (OpenAI's ``{"content": [{"token", "logprob", "top_logprobs"}]}``)."""

    requests: list
    reply: Callable[[dict, int], str | dict]

    def choice(self, body: dict, i: int) -> dict:
        reply = self.reply(body, i)
        reply = {"content": reply} if isinstance(reply, str) else reply
        return {"index": i, "finish_reason": "stop", "logprobs": reply.get("logprobs"),
                "message": {"role": "assistant", "content": reply["content"]}}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.path, self.headers.get("Authorization"), body))
        choices = [self.choice(body, i) for i in range(body.get("n", 1))]
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        payload = json.dumps({"choices": choices, "usage": usage}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@contextmanager
def fake_openai(reply: Callable[[dict, int], str]) -> Iterator[tuple[str, list]]:
    """(base_url, the list its requests are recorded in) of a fake endpoint serving while the context is open."""
    handler = type("Handler", (FakeOpenAI,), {"requests": [], "reply": staticmethod(reply)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler.requests
    finally:
        httpd.shutdown()
