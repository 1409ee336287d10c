"""The paper profile's DeepSpeed ZeRO-3 config, read by DeepSpeed's own parser (it installs and
imports without CUDA), after transformers fills its "auto" values from the profile's training
settings as a launched Trainer would."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("deepspeed", reason="requirements.txt installs deepspeed")

from helpers.pipeline.config import load_profile, resolve_path
from helpers.train.trainer import trl_args


def parsed(train, config: dict):
    """DeepSpeed's config object for `config` with a training section's values filled in."""
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    args = trl_args(train, "/tmp/unused", 0, cuda=False, bf16=True)
    keep = {"output_dir", "learning_rate", "per_device_train_batch_size", "weight_decay"}
    keep |= {"gradient_accumulation_steps", "bf16", "use_cpu", "warmup_steps"}
    hf = HfTrainerDeepSpeedConfig(json.loads(json.dumps(config)))
    hf.trainer_config_process(TrainingArguments(**{k: v for k, v in args.items() if k in keep}))
    return DeepSpeedConfig(hf.config)


@pytest.mark.parametrize("section", ["sft", "dpo"])
def test_the_paper_profiles_zero3_config_is_deepspeeds(section):
    train = getattr(load_profile("params/paper.yaml"), section)
    config = json.loads(resolve_path(train.deepspeed_config).read_text())
    ds = parsed(train, config)
    assert ds.zero_optimization_stage == 3
    assert ds.bfloat16_config.enabled
    assert ds.zero_config.gather_16bit_weights_on_model_save  # a whole checkpoint to save
    # One process here: the batch per process; the launch multiplies it by `processes`.
    per_process = train.per_device_batch_size * train.gradient_accumulation
    assert ds.train_batch_size == per_process
    assert per_process * train.processes == 96  # the paper's global batch


def test_a_misspelt_key_is_refused():
    train = load_profile("params/paper.yaml").sft
    config = json.loads(resolve_path(train.deepspeed_config).read_text())
    config["zero_optimization"]["overlap_comms"] = True  # overlap_comm
    with pytest.raises(Exception, match="overlap_comms"):
        parsed(train, config)
