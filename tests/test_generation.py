"""Generation backends: hf on the real backbone, openai against a real local HTTP server."""

from __future__ import annotations

import json
import threading

import pytest

from helpers.grading.formatting import chat_messages
from helpers.infer.generation import make_backend
from helpers.infer.hf_backend import HFBackend
from helpers.infer.interface import Completion, Prompt, SamplingCfg
from helpers.infer.loops import repeating_tail
from helpers.infer.openai_backend import OpenAIBackend
from tools.serve import make_handler, start_server


def test_hf_backend_batches_and_reports_stop_reasons(backbone):
    model, tok = backbone
    be = HFBackend(model, tok, batch_size=4, progress=False)
    prompts = [
        Prompt(chat_messages(q, ""))
        for q in ["Say hi.", "What is 2+2? Answer briefly.", "Write a long story about a dragon."]
    ]
    outs = be.generate(prompts, SamplingCfg(max_new_tokens=12))
    assert [len(o) for o in outs] == [1, 1, 1]
    story = outs[2][0]
    assert story.stop_reason == "length" and story.tokens == 12
    again = be.generate(prompts, SamplingCfg(max_new_tokens=12))
    assert [o[0].text for o in outs] == [o[0].text for o in again]  # greedy is deterministic
    sampled = be.generate(prompts[:1], SamplingCfg(n=3, temperature=1.0, max_new_tokens=8))
    assert len(sampled[0]) == 3


def test_hf_backend_stops_at_end_marker(backbone):
    model, tok = backbone
    be = HFBackend(model, tok, batch_size=2, progress=False)
    # the prefix leads the model to close the solution right away
    p = Prompt(
        chat_messages("Repeat exactly: <|end_of_solution|>", ""),
        prefix="<|begin_of_solution|>\n\\boxed{1}\n",
    )
    out = be.generate([p], SamplingCfg(max_new_tokens=40, stop=("\n",)))[0][0]
    assert out.stop_reason == "end_marker" and out.text.endswith("\n") and out.text.count("\n") == 1


def test_repeating_tail_needs_a_long_run_of_one_block():
    block = list(range(100, 109))  # 9 tokens
    assert repeating_tail(list(range(40)) + block * 15)  # 135 looping tokens after a prefix
    assert not repeating_tail(block * 14)  # 126 tokens: under the 128-token span
    assert not repeating_tail(list(range(300)))
    big = list(range(200, 240))  # 40 tokens: the loop must show 5 periods, 200 tokens
    assert not repeating_tail(big * 4) and repeating_tail(big * 5)
    # one changed token inside the window breaks the loop
    broken = block * 20
    broken[-60] = 7
    assert not repeating_tail(broken)


def test_hf_backend_stops_a_loop_early(backbone):
    model, tok = backbone
    # The backbone continues a long run of one sentence with more of it under greedy decoding.
    p = Prompt(chat_messages("List the remainders.", ""), prefix="The remainder is 0.\n" * 12)
    cfg = SamplingCfg(max_new_tokens=200)
    looped = HFBackend(model, tok, batch_size=2, progress=False, stop_loops=True)
    full = HFBackend(model, tok, batch_size=2, progress=False)
    short, long = looped.generate([p], cfg)[0][0], full.generate([p], cfg)[0][0]
    assert (long.stop_reason, long.tokens) == ("length", 200)
    assert short.stop_reason == "loop" and short.tokens < 200
    assert long.text.startswith(short.text)  # the same greedy decode, stopped sooner
    with pytest.raises(ValueError, match="hf backend only"):
        make_backend("vllm", "m", stop_loops=True)


class EchoBackend:
    """A stand-in model behind the real HTTP server: answers with the last user message."""

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, cfg):
        self.calls += 1
        return [
            [
                Completion(f"echo {k}: {p.messages[-1]['content'][-20:]}", 5, "end_of_turn")
                for k in range(cfg.n)
            ]
            for p in prompts
        ]


def flaky_server(fail_first: int, key: str | None = None):
    """A real server that answers 429 to its first requests, then serves EchoBackend."""
    from http.server import ThreadingHTTPServer

    backend = EchoBackend()
    base = make_handler(backend, "echo", key)
    state = {"left": fail_first}
    lock = threading.Lock()

    class Handler(base):
        def do_POST(self):
            with lock:
                fail = state["left"] > 0
                state["left"] -= fail
            if fail:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(429, {"error": {"message": "slow down"}})
                return
            super().do_POST()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1", backend


def test_openai_backend_retries_429_and_resumes_from_cache(tmp_path):
    server, url, backend = flaky_server(fail_first=2, key="k-123")
    cache = tmp_path / "partial.jsonl"
    be = OpenAIBackend(
        url, "echo", api_key="k-123", concurrency=2, backoff=0.01, cache_path=cache, progress=False
    )
    prompts = [Prompt(chat_messages(f"question {i}", "")) for i in range(5)]
    outs = be.generate(prompts, SamplingCfg(n=2, max_new_tokens=8))
    assert [len(o) for o in outs] == [2] * 5
    assert outs[3][1].text.startswith("echo 1:") and "question 3" in outs[3][1].text
    assert len(cache.read_text().splitlines()) == 5 and "k-123" not in cache.read_text()
    calls = backend.calls
    again = be.generate(prompts, SamplingCfg(n=2, max_new_tokens=8))  # all from the cache
    assert backend.calls == calls and [o[0].text for o in again] == [o[0].text for o in outs]
    server.shutdown()


def test_openai_backend_rejects_a_bad_key_without_retrying(tmp_path):
    server, url, _ = flaky_server(fail_first=0, key="right")
    be = OpenAIBackend(url, "echo", api_key="wrong", backoff=0.01, progress=False)
    with pytest.raises(RuntimeError, match="HTTP 401"):
        be.generate([Prompt(chat_messages("q", ""))], SamplingCfg())
    server.shutdown()


def test_openai_backend_against_the_real_backbone_server(backbone):
    model, tok = backbone
    server, url = start_server(HFBackend(model, tok, progress=False), "smollm2")
    be = OpenAIBackend(url, "smollm2", progress=False)
    out = be.generate([Prompt(chat_messages("What is 2+2?", ""))], SamplingCfg(max_new_tokens=8))
    direct = HFBackend(model, tok, progress=False).generate(
        [Prompt(chat_messages("What is 2+2?", ""))], SamplingCfg(max_new_tokens=8)
    )
    assert out[0][0].text == direct[0][0].text and out[0][0].tokens == 8
    server.shutdown()


def test_reasoning_field_is_kept(tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class R1Like(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps(
                {
                    "choices": [
                        {
                            "message": {
                                "content": "So \\boxed{4}.",
                                "reasoning_content": "2+2 is 4.",
                            },
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"completion_tokens": 9},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), R1Like)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    be = OpenAIBackend(f"http://127.0.0.1:{server.server_address[1]}", "r1", progress=False)
    ((c,),) = be.generate([Prompt(chat_messages("q", ""))], SamplingCfg())
    assert c.reasoning == "2+2 is 4." and c.text == "So \\boxed{4}." and c.tokens == 9
    server.shutdown()
