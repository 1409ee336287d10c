"""A key named by the profile reaches the teacher endpoint but no notebook or artifact."""

from __future__ import annotations

import textwrap

from helpers.pipeline.config import load_profile
from helpers.pipeline.execute import execute_plan, run_dir
from helpers.pipeline.paths import rel
from helpers.pipeline.plan import build_plan

from .test_generation import flaky_server

SECRET = "sk-test-DO-NOT-LEAK-0123456789abcdef"


def test_secret_never_reaches_outputs(tmp_outputs, tmp_path, monkeypatch):
    server, url, backend = flaky_server(fail_first=0, key=SECRET)
    monkeypatch.setenv("STILL_TEST_KEY", SECRET)
    prof_path = tmp_path / "secret.yaml"
    prof_path.write_text(
        textwrap.dedent(f"""\
        run: secret
        stages: [collect]
        benchmarks: {{normal: {{kind: normal, size: 2}}}}
        pools: {{normal_math: {{size: 3}}}}
        teachers:
          - {{name: remote, style: r1, kind: openai, base_url: "{url}", api_model: echo,
              api_key_env: STILL_TEST_KEY, rollouts: 2}}
        variants: [{{name: backbone, kind: backbone}}]
    """)
    )
    prof = load_profile(prof_path)
    plan, _ = build_plan(prof, rel(prof_path))
    execute_plan(plan, run_dir(prof.run), profile=prof, log=lambda s: None)
    assert backend.calls == 3  # the key worked: the server refuses requests without it
    files = [p for p in tmp_outputs.rglob("*") if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in files) and any(p.suffix == ".jsonl" for p in files)
    for p in files:
        assert SECRET not in p.read_text(errors="ignore"), rel(p)
    server.shutdown()
