"""A small OpenAI-compatible chat server over a local backend (a stand-in teacher, and tests).

Usage: python tools/serve.py MODEL [--port 8000] [--api-key-env NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from helpers.infer.interface import Prompt, SamplingCfg


def make_handler(backend: Any, model_name: str, api_key: str | None = None) -> type:
    """Build a request handler class that answers /v1/chat/completions with the backend."""
    lock = threading.Lock()  # one generation at a time: the local model is not thread-safe

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if api_key and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._send(401, {"error": {"message": "bad or missing API key"}})
                return
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            msgs = req["messages"]
            prefix = ""
            if msgs and msgs[-1]["role"] == "assistant":
                prefix = msgs[-1]["content"]
                msgs = msgs[:-1]
            cfg = SamplingCfg(
                n=int(req.get("n", 1)),
                temperature=float(req.get("temperature", 0)),
                top_p=float(req.get("top_p", 1.0)),
                max_new_tokens=int(req.get("max_tokens", 256)),
                seed=int(req.get("seed", 0)),
                stop=tuple(req.get("stop") or ()),
            )
            with lock:
                (comps,) = backend.generate([Prompt(msgs, prefix)], cfg)
            self._send(
                200,
                {
                    "object": "chat.completion",
                    "model": model_name,
                    "choices": [
                        {
                            "index": i,
                            "message": {"role": "assistant", "content": c.text},
                            "finish_reason": "length" if c.stop_reason == "length" else "stop",
                        }
                        for i, c in enumerate(comps)
                    ],
                    "usage": {
                        "completion_tokens": sum(c.tokens for c in comps),
                        "prompt_tokens": 0,
                    },
                },
            )

    return Handler


def start_server(
    backend: Any, model_name: str, port: int = 0, api_key: str | None = None
) -> tuple[ThreadingHTTPServer, str]:
    """Start the server on 127.0.0.1 in a thread; return it and its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(backend, model_name, api_key))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def main() -> None:
    """Serve a model until interrupted."""
    from helpers.infer.generation import make_backend

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--api-key-env", help="environment variable holding the key to require")
    args = ap.parse_args()
    key = os.environ[args.api_key_env] if args.api_key_env else None
    server, url = start_server(make_backend("hf", args.model), args.model, args.port, key)
    print(f"serving {args.model} at {url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
