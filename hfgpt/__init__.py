"""hfgpt: the GPT of *Build a Large Language Model (From Scratch)* as a native Hugging Face transformers model.

Importing hfgpt registers ``GPTScratchConfig`` and the model classes with transformers' Auto classes (see below)."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from .configuration_gpt_scratch import PRESETS, GPTScratchConfig
from .modeling_gpt_scratch import (GPTScratchForCausalLM, GPTScratchForSequenceClassification, GPTScratchModel,
                                   GPTScratchPreTrainedModel)

__version__ = "0.1.0"

# In-process: AutoModel*.from_pretrained on a "gpt_scratch" folder resolves to these classes.
AutoConfig.register(GPTScratchConfig.model_type, GPTScratchConfig, exist_ok=True)
AutoModel.register(GPTScratchConfig, GPTScratchModel, exist_ok=True)
AutoModelForCausalLM.register(GPTScratchConfig, GPTScratchForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(GPTScratchConfig, GPTScratchForSequenceClassification, exist_ok=True)

# Out of process: save_pretrained copies the modeling and configuration files (with the siblings the modeling file
# imports: fast_paths.py, errors.py) and writes auto_map into config.json.
GPTScratchConfig.register_for_auto_class("AutoConfig")
GPTScratchModel.register_for_auto_class("AutoModel")
GPTScratchForCausalLM.register_for_auto_class("AutoModelForCausalLM")
GPTScratchForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = ["GPTScratchConfig", "GPTScratchPreTrainedModel", "GPTScratchModel", "GPTScratchForCausalLM",
           "GPTScratchForSequenceClassification", "PRESETS"]
