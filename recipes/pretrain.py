"""Pretrain a GPT from scratch (the book's chapter 5) with the Hugging Face Trainer.

    accelerate launch recipes/pretrain.py                       # defaults: embedded corpus, "small" preset
    accelerate launch recipes/pretrain.py --train_file my.txt --preset mini --max_steps 500
    python recipes/pretrain.py --help                            # every model, data and TrainingArguments flag

The logic lives in hfgpt.training.pretrain; this file only parses arguments.
"""

import sys

from transformers import HfArgumentParser

from hfgpt.training.pretrain import DataArguments, ModelArguments, PretrainingArguments, pretrain


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, PretrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(argv[0])
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    try:
        pretrain(model_args, data_args, training_args)
    except (ValueError, FileNotFoundError) as err:  # bad input: one clear line, no stack trace
        print(f"pretrain.py: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
