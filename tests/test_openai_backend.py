"""The openai backend against a local OpenAI-compatible server (started here, backed by the hf backend)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import malt_train, run_cli

SERVED = "tiny"  # the base model's served name (not a local path: nothing may resolve it)
LORA = "tiny-verifier"  # a served "adapter" name (vLLM's --lora-modules NAME=DIR); same weights here
BROKEN = "broken"  # answers 500, to test retries and the error line
NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.backend = backend
        self.lock = threading.Lock()  # one generate at a time: the hf backend is not thread-safe
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    """``GET /v1/models`` and ``POST /v1/chat/completions`` (with ``n``) as vLLM answers them."""

    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str) -> None:
        self._send(code, {"error": {"message": message, "type": "BadRequestError", "code": code}})

    def do_GET(self) -> None:
        if self.path != "/v1/models":
            return self._error(404, f"no route {self.path}")
        self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in (SERVED, LORA, BROKEN)]})

    def do_POST(self) -> None:
        from harness.inference.backends.base import SamplingParams

        if self.path != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}")
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(req)
        if req["model"] == BROKEN:
            return self._error(500, "engine\ncrashed")
        if req["model"] not in (SERVED, LORA):
            return self._error(404, f"The model `{req['model']}` does not exist.")
        temperature, top_p = req.get("temperature", 1.0), req.get("top_p", 1.0)
        params = SamplingParams(req["max_tokens"], temperature, top_p, req.get("n", 1), req.get("seed"))
        be = self.server.backend
        with self.server.lock:
            comps = be.generate([req["messages"]], params)[0]
            prompt_tokens = len(be.tokenizer(be.render(req["messages"]), add_special_tokens=False)["input_ids"])
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": "length" if c.truncated else "stop",
            }
            for i, c in enumerate(comps)
        ]
        used = sum(c.n_tokens for c in comps)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": used, "total_tokens": prompt_tokens + used}
        self._send(
            200,
            {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": req["model"], "choices": choices}
            | {"usage": usage},
        )


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    from harness.inference.backends.hf import HFBackend

    srv = _Server(HFBackend(str(tiny_model_dir), dtype="float32"))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _eval(*args, data, env: dict | None = None):
    return run_cli("malt_apps.eval_cli", *args, data=data, env_extra={**NO_PROXY, **(env or {})})


def _texts(out) -> list:
    """Every role's text per question, from the sample log of a malt-eval run."""
    (log,) = out.glob("samples_malt_gsm8k_*.jsonl")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [[t["text"] for t in r["samples"][0]["turns"].values()] for r in rows]


PROMPTS = [[{"role": "user", "content": f"Add {i} and {i + 2}."}] for i in range(3)]


def test_greedy_matches_hf_backend(server, tiny_model_dir):
    from harness.inference.backends.base import SamplingParams
    from harness.inference.backends.hf import HFBackend
    from harness.inference.backends.openai import OpenAIBackend

    params = SamplingParams(max_new_tokens=8)
    remote = OpenAIBackend(SERVED, base_url=server.url, batch_size=3).generate(PROMPTS, params)
    local = HFBackend(str(tiny_model_dir), dtype="float32").generate(PROMPTS, params)
    assert [[c.text for c in x] for x in remote] == [[c.text for c in x] for x in local]
    assert [[c.n_tokens for c in x] for x in remote] == [[c.n_tokens for c in x] for x in local]
    assert [[c.truncated for c in x] for x in remote] == [[c.truncated for c in x] for x in local]


def test_n_samples_are_one_request_with_seed_and_token_counts(server):
    from harness.inference.backends.base import SamplingParams
    from harness.inference.backends.openai import OpenAIBackend

    be = OpenAIBackend(None, base_url=server.url)  # None: the server's first model
    assert be.model_id == SERVED
    before = len(server.requests)
    out = be.generate(PROMPTS[:2], SamplingParams(max_new_tokens=6, temperature=1.0, top_p=0.9, n=3, seed=5))
    reqs = server.requests[before:]
    assert len(reqs) == 2 and all(r["n"] == 3 and r["max_tokens"] == 6 and r["top_p"] == 0.9 for r in reqs)
    assert sorted(r["seed"] for r in reqs) == [5, 8]  # distinct seed ranges per prompt
    assert [len(x) for x in out] == [3, 3] and len({c.text for c in out[0]}) > 1
    assert all(0 < c.n_tokens <= 6 for x in out for c in x)


def test_split_tokens_keeps_the_total():
    from harness.inference.backends.openai import split_tokens

    assert split_tokens(10, ["abc"], [False], 20) == [10]
    assert split_tokens(17, ["a", "bbbbbbb", "x" * 40], [False, False, True], 8) == [2, 7, 8]
    got = split_tokens(11, ["aa", "bb", "cc"], [False] * 3, 20)
    assert sum(got) == 11 and max(got) - min(got) <= 1


def test_malt_eval_with_openai_backend_equals_hf(server, tiny_model_dir, small_data, tmp_path):
    common = ["--agents", "g,v,r", "--tasks", "malt_gsm8k", "--limit", 2, "--temperature", 0]
    common += ["--max-new-tokens", 6, "--batch-size", 4, "--log-samples"]
    before = len(server.requests)
    r = _eval(
        "--backend",
        "openai",
        "--base-url",
        server.url,
        "--model",
        SERVED,
        "--verifier-adapter",
        LORA,
        *common,
        "--output-path",
        tmp_path / "openai",
        data=small_data,
        env={"OPENAI_API_KEY": "sk-test"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (res,) = (tmp_path / "openai").glob("results_*.json")
    malt = json.loads(res.read_text())["malt"]
    assert malt["calls_per_question"]["malt_gsm8k"] == 3 and malt["tokens_per_question"]["malt_gsm8k"] > 0
    reqs = server.requests[before:]
    assert len(reqs) == 6 and [r["model"] for r in reqs].count(LORA) == 2  # 2 questions x 3 roles
    hf = tmp_path / "hf"
    r = _eval("--model", tiny_model_dir, "--dtype", "float32", *common, "--output-path", hf, data=small_data)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _texts(tmp_path / "openai") == _texts(hf)


def test_unreachable_server_is_one_line_exit_2(small_data):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    r = _eval("--backend", "openai", "--base-url", url, "--model", SERVED, "--limit", 1, data=small_data)
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("malt-eval: error: cannot reach") and url in err[0]


def test_unknown_model_and_server_errors(server, small_data):
    from harness.core.errors import MaltError
    from harness.inference.backends.base import SamplingParams
    from harness.inference.backends.openai import OpenAIBackend

    r = _eval("--backend", "openai", "--base-url", server.url, "--model", "nope", "--limit", 1, data=small_data)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "does not serve model 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = _eval("--backend", "hf", "--base-url", server.url, "--limit", 1, data=small_data)
    assert r.returncode == 2 and "--base-url is for --backend openai" in r.stderr
    be = OpenAIBackend(BROKEN, base_url=server.url, max_retries=1)
    before = len(server.requests)
    with pytest.raises(MaltError, match=r"answered 500: engine crashed$"):
        be.generate(PROMPTS[:1], SamplingParams(max_new_tokens=4))
    assert len(server.requests) - before == 2  # retried once


def test_malt_train_generate_with_openai_backend(server, small_data, tmp_path):
    run = tmp_path / "run"
    args = ["--backend", "openai", "--base-url", server.url, "--questions", 2, "--branching", 2]
    r = malt_train(
        "generate", *args, "--max-new-tokens", 4, "--out", run, data=small_data, env_extra=NO_PROXY
    )  # no --model: the server's
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((run / "generate.json").read_text())["model"] == SERVED
    assert len((run / "tree.jsonl").read_text().splitlines()) == 2 * (2 + 4 + 8)
