"""Instruction fine-tuning (the book's chapter 7) with the Hugging Face Trainer, then response generation and an
optional LLM-as-judge score.

    python recipes/finetune_instructions.py --model_name_or_path runs/pretrain --data_file instruction-data.json
    python recipes/finetune_instructions.py --model_name_or_path openai-community/gpt2-medium \
        --dataset_name tatsu-lab/alpaca --mode lora --judge_url http://localhost:11434/v1 --judge_model_name llama3
    python recipes/finetune_instructions.py --help       # every model, LoRA, data, judge and TrainingArguments flag

The logic lives in hfgpt.training.finetune_instructions; this file only parses arguments.
"""

from hfgpt.training.finetune_instructions import ARGUMENT_TYPES, finetune_instructions
from hfgpt.training.recipe_cli import run_recipe


def main(argv=None):
    return run_recipe(ARGUMENT_TYPES, finetune_instructions, argv, prog=__file__)


if __name__ == "__main__":
    main()
