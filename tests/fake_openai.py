"""A fake OpenAI-compatible endpoint on loopback, for the tests of the openai engine, of secrets and of alpaca_eval's
official annotator (which reads the answer's log-probabilities and the token usage); it can also misbehave: answer
error statuses before serving, or stop answering."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI(BaseHTTPRequestHandler):
    """Records each request as (path, Authorization header, JSON body) in ``requests`` and answers each of the
    body's ``n`` completions (1 when the body names none) with ``reply(body, i)``: the text, or a dict of it
    (``content``) and the choice's ``logprobs`` (OpenAI's ``{"content": [{"token", "logprob", "top_logprobs"}]}``).
    Chat requests get chat choices, ``/completions`` requests text choices.

    Misbehaviour, shared by all requests in arrival order: ``failures`` is a list of HTTP statuses answered (with
    ``Retry-After: 0``) to the first requests instead of serving them; after ``hang_after`` served requests, every
    further request gets no answer at all."""

    requests: list
    reply: Callable[[dict, int], str | dict]
    failures: list
    hang_after: int | None
    served: list
    lock: threading.Lock

    def choice(self, body: dict, i: int) -> dict:
        reply = self.reply(body, i)
        reply = {"content": reply} if isinstance(reply, str) else reply
        if self.path.endswith("/chat/completions"):
            return {"index": i, "finish_reason": "stop", "logprobs": reply.get("logprobs"),
                    "message": {"role": "assistant", "content": reply["content"]}}
        return {"index": i, "finish_reason": "stop", "logprobs": None, "text": reply["content"]}

    def answer(self, status: int, payload: dict, headers: dict = ()) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **dict(headers)}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.path, self.headers.get("Authorization"), body))
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
            hang = failure is None and self.hang_after is not None and len(self.served) >= self.hang_after
            if failure is None and not hang:
                self.served.append(self.path)
        if failure is not None:
            return self.answer(failure, {"error": {"message": f"fake {failure}", "type": "server_error"}},
                               {"Retry-After": "0"})
        if hang:
            time.sleep(3600)  # the client's timeout ends the request; the server's shutdown ends this thread
            return None
        choices = [self.choice(body, i) for i in range(body.get("n", 1))]
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return self.answer(200, {"choices": choices, "usage": usage, "id": "fake", "object": "chat.completion",
                                 "created": 0, "model": body.get("model", "")})

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler does not keep the test process alive

    def handle_error(self, request, client_address):
        pass  # a client that gave up on a hanging request closed its socket: not an error of the test


@contextmanager
def fake_openai(reply: Callable[[dict, int], str], failures: list[int] = (), hang_after: int | None = None,
                port: int = 0) -> Iterator[tuple[str, list]]:
    """(base_url, the list its requests are recorded in) of a fake endpoint serving while the context is open, on
    ``port`` (0: a free one)."""
    handler = type("Handler", (FakeOpenAI,), {"requests": [], "reply": staticmethod(reply), "failures": list(failures),
                                              "hang_after": hang_after, "served": [], "lock": threading.Lock()})
    httpd = QuietServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
