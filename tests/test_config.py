"""Profile validation: every bad-input kind stops with one message naming file, key, expected, found."""

from __future__ import annotations

import textwrap

import pytest

from helpers.pipeline.config import load_profile
from helpers.pipeline.schema import ProfileError

GOOD = textwrap.dedent("""\
    run: t
    benchmarks:
      normal: {kind: normal, size: 4}
    pools:
      normal_math: {size: 4}
      hard_math: {size: 4}
    mixtures:
      small: {size: 4, ratios: {normal_math: 0.5, hard_math: 0.5}}
    variants:
      - {name: backbone, kind: backbone}
      - {name: sft_small, kind: sft, mixture: small}
""")


def write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def error_of(tmp_path, text):
    with pytest.raises(ProfileError) as exc:
        load_profile(write(tmp_path, text))
    return str(exc.value)


def test_good_profile_loads(tmp_path):
    prof = load_profile(write(tmp_path, GOOD))
    assert prof.run == "t" and [v.name for v in prof.variants] == ["backbone", "sft_small"]


@pytest.mark.parametrize("name", ["smoke", "tiny", "paper", "gpu"])
def test_shipped_profiles_validate(name):
    prof = load_profile(f"params/{name}.yaml")
    assert prof.run == name


def test_unknown_key_with_did_you_mean(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("run: t", "run: t\ngenration: {}"))
    assert "p.yaml" in msg and "key 'genration'" in msg
    assert "unknown key" in msg and "did you mean 'generation'" in msg


def test_nested_unknown_key(tmp_path):
    msg = error_of(tmp_path, GOOD + "sft: {learning_rat: 0.1}\n")
    assert "key 'sft.learning_rat'" in msg and "did you mean 'learning_rate'" in msg


def test_wrong_type(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("size: 4}\npools", "size: many}\npools"))
    assert "key 'benchmarks.normal.size'" in msg
    assert "expected a value of type int" in msg and "'many'" in msg


def test_impossible_size(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("normal_math: {size: 4}", "normal_math: {size: 0}"))
    assert "key 'pools.normal_math.size'" in msg and "expected a number >= 1" in msg
    assert "found 0" in msg


def test_ratios_must_sum_to_one(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("hard_math: 0.5}", "hard_math: 0.2}"))
    assert "key 'mixtures.small.ratios'" in msg and "ratios must sum to 1, found 0.7" in msg


def test_variant_naming_unknown_input(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("mixture: small", "mixture: big"))
    assert "variant 'sft_small' names mixture 'big'" in msg and "['small']" in msg


def test_missing_file(tmp_path):
    msg = error_of(tmp_path, GOOD + "prompt_file: prompts/nope.txt\n")
    assert "key 'prompt_file'" in msg and "expected an existing file" in msg
    assert "prompts/nope.txt" in msg


def test_malformed_yaml_names_line(tmp_path):
    msg = error_of(tmp_path, GOOD + "sft: {method: lora\n  epochs: [1,\n")
    assert "p.yaml, line" in msg and "malformed YAML" in msg


def test_error_names_line_of_key(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("run: t", "run: t\nseed: x"))
    assert "line 2" in msg


def test_missing_profile_file(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "absent.yaml")


def test_loop_stopping_needs_the_hf_backend(tmp_path):
    msg = error_of(tmp_path, GOOD + "generation: {backend: vllm, stop_loops: true}\n")
    assert "generation" in msg and "hf backend only" in msg and "vllm" in msg


@pytest.mark.parametrize(
    "change,key,expected",
    [
        ("normal: {kind: normal, size: 1000000000000}", "benchmarks.normal.size", "<= 100000"),
        ("normal_math: {size: 1000000000000}", "pools.normal_math.size", "<= 1000000"),
        ("small: {size: 99999999999, ratios", "mixtures.small.size", "<= 1000000"),
    ],
)
def test_sizes_have_upper_bounds_that_protect_memory(tmp_path, change, key, expected):
    original = {
        "benchmarks": "normal: {kind: normal, size: 4}",
        "pools": "normal_math: {size: 4}",
        "mixtures": "small: {size: 4, ratios",
    }[key.split(".")[0]]
    msg = error_of(tmp_path, GOOD.replace(original, change))
    assert f"key '{key}'" in msg and f"expected a number {expected}" in msg


@pytest.mark.parametrize("run", ["../../escaped", "", "a/b", "..", "/abs"])
def test_run_must_be_a_plain_name(tmp_path, run):
    msg = error_of(tmp_path, GOOD.replace("run: t", f"run: '{run}'"))
    assert "key 'run'" in msg and "a plain name" in msg and "line 1" in msg


def test_a_local_path_is_never_taken_for_a_hub_id(tmp_path):
    pools = "pools:\n  normal_math:\n    size: 4\n    sources:\n      - {source: numina_math, path: %s}\n"
    text = GOOD.replace("pools:\n  normal_math: {size: 4}\n", pools % "data/numina")
    msg = error_of(tmp_path, text)
    assert "key 'pools.normal_math.sources.0.path'" in msg
    assert "expected an existing local file, or hub:<owner>/<name>" in msg and "data/numina" in msg
    ok = load_profile(
        write(
            tmp_path,
            GOOD.replace("pools:\n  normal_math: {size: 4}\n", pools % "hub:AI-MO/NuminaMath-CoT"),
        )
    )
    assert ok.pools["normal_math"].sources[0].path == "hub:AI-MO/NuminaMath-CoT"
    msg = error_of(tmp_path, text.replace("data/numina", "hub:not a hub id"))
    assert "expected hub:<owner>/<name>" in msg


def test_a_duplicate_key_is_refused_naming_both_lines(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("run: t", "run: t\nseed: 1\nseed: 2"))
    assert "key 'seed' appears twice (lines 2 and 3)" in msg


def test_unreadable_profiles_give_one_clear_message(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(GOOD.encode() + b"# caf\xe9\n")
    with pytest.raises(ProfileError, match=r"latin1.yaml: not UTF-8 text \(byte \d+\)"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="is a folder, expected a profile"):
        load_profile(tmp_path)


def test_a_duplicate_variant_names_its_key_and_line_not_the_whole_profile(tmp_path):
    twice = "- {name: sft_small, kind: sft, mixture: small}"
    msg = error_of(tmp_path, GOOD.replace(twice, f"{twice}\n  {twice}"))
    assert msg.endswith("line 12: key 'variants.2.name': variant name 'sft_small' is used twice")


def test_an_unknown_pool_group_names_its_key_and_line(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("hard_math: 0.5}}", "nowhere: 0.5}}"))
    assert "line 8: key 'mixtures.small.ratios.nowhere'" in msg
    assert "expected one of ['hard_math', 'normal_math']" in msg and "variants" not in msg
