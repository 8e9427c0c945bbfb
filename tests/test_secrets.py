"""An API key comes only from the environment (the config holds the variable's name) and is written nowhere: not in
an artifact's manifest, metrics.json, Hydra's saved config, the logs or the W&B / CSV logger files of a run."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import ClassVar

import pytest

from tests.conftest import start_train

FAKE_KEY = "sk-test-4f9c2a7e1b8d4c6f9e0a1b2c3d4e5f60"


class FakeEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that writes a new short request for every completion asked for."""

    authorizations: ClassVar[set] = set()
    serial = count()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeEndpoint.authorizations.add(self.headers.get("Authorization"))
        choices = [{"message": {"role": "assistant", "content": f"How would I pick lock number {next(self.serial)} "
                                                                 "on my neighbour's door?"}} for _ in range(body["n"])]
        payload = json.dumps({"choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_an_api_key_from_the_environment_is_used_and_written_nowhere(tiny_llama_dir, tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        process = start_train(tiny_llama_dir, tmp_path / "artifacts", tmp_path / "run", "generator=openai",
                              "generator.model=fake", f"generator.base_url=http://127.0.0.1:{httpd.server_address[1]}/v1",
                              "generator.api_key_env=FAC_TEST_API_KEY", "logger=wandb", "finetune.epochs=2",
                              "synthesis.max_passes=2", env={"FAC_TEST_API_KEY": FAKE_KEY, "WANDB_MODE": "offline"})
        _, stderr = process.communicate(timeout=600)
    finally:
        httpd.shutdown()
    assert process.returncode == 0, stderr[-3000:]
    assert FakeEndpoint.authorizations == {f"Bearer {FAKE_KEY}"}  # the generator did use the key
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"metrics.json", "manifest.json", "checksums.json", "config.yaml", "train.log"} <= names, names
    assert any("wandb" in p.parts for p in written)  # the W&B run (its config included) was written
    leaked = [str(p) for p in written if FAKE_KEY.encode() in p.read_bytes() or b"sk-test-" in p.read_bytes()]
    assert not leaked and FAKE_KEY not in stderr
    assert "FAC_TEST_API_KEY" in (tmp_path / "run" / ".hydra" / "config.yaml").read_text()  # only the name
