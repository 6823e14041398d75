"""Spam classification fine-tuning (the book's chapter 6; LoRA as in appendix E) with the Hugging Face Trainer.

    python recipes/finetune_spam.py --model_name_or_path runs/pretrain --data_file SMSSpamCollection --mode lora
    python recipes/finetune_spam.py --model_name_or_path openai-community/gpt2 --mode last-block   # the book's setup
    python recipes/finetune_spam.py --data_file SMSSpamCollection --export_pretraining_text runs/sms.txt
    python recipes/finetune_spam.py --help       # every model, data and TrainingArguments flag

The logic lives in hfgpt.training.finetune_spam; this file only parses arguments.
"""

import sys

from transformers import HfArgumentParser

from hfgpt.training.finetune_spam import SpamDataArguments, SpamModelArguments, SpamTrainingArguments, finetune_spam


def main(argv=None):
    parser = HfArgumentParser((SpamModelArguments, SpamDataArguments, SpamTrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(argv[0])
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    try:
        finetune_spam(model_args, data_args, training_args)
    except (ValueError, FileNotFoundError, ConnectionError) as err:  # bad input: one clear line, no stack trace
        print(f"finetune_spam.py: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
