"""Instruction fine-tuning (the book's chapter 7) with the Hugging Face Trainer, then response generation and an
optional LLM-as-judge score.

    python recipes/finetune_instructions.py --model_name_or_path runs/pretrain --data_file instruction-data.json
    python recipes/finetune_instructions.py --model_name_or_path openai-community/gpt2-medium \
        --dataset_name tatsu-lab/alpaca --use_lora --judge_url http://localhost:11434/v1 --judge_model_name llama3
    python recipes/finetune_instructions.py --help       # every model, data, judge and TrainingArguments flag

The logic lives in hfgpt.training.finetune_instructions; this file only parses arguments.
"""

import sys

from transformers import HfArgumentParser

from hfgpt.training.finetune_instructions import (
    InstructionDataArguments,
    InstructionModelArguments,
    InstructionTrainingArguments,
    JudgeArguments,
    finetune_instructions,
)


def main(argv=None):
    parser = HfArgumentParser((InstructionModelArguments, InstructionDataArguments, JudgeArguments,
                               InstructionTrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        model_args, data_args, judge_args, training_args = parser.parse_json_file(argv[0])
    else:
        model_args, data_args, judge_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    try:
        finetune_instructions(model_args, data_args, judge_args, training_args)
    except (ValueError, FileNotFoundError, ConnectionError) as err:  # bad input: one clear line, no stack trace
        print(f"finetune_instructions.py: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
