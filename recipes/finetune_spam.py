"""Spam classification fine-tuning (the book's chapter 6; LoRA as in appendix E) with the Hugging Face Trainer.

    python recipes/finetune_spam.py --model_name_or_path runs/pretrain --data_file SMSSpamCollection --mode lora
    python recipes/finetune_spam.py --model_name_or_path openai-community/gpt2 --mode last-block   # the book's setup
    python recipes/finetune_spam.py --model_name_or_path runs/pretrain --data_file SMSSpamCollection \
        --no_balance --class_weighting --target_fpr 0.005   # all the data; threshold for <= 0.5% ham flagged
    python recipes/finetune_spam.py --help       # every model, LoRA, data and TrainingArguments flag

The logic lives in hfgpt.training.finetune_spam; this file only parses arguments. SMS pretraining text (the messages
outside every evaluation split) comes from recipes/export_sms_text.py.
"""

import sys

from hfgpt.training.finetune_spam import ARGUMENT_TYPES, finetune_spam
from hfgpt.training.recipe_cli import run_recipe


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(arg.split("=")[0] == "--export_pretraining_text" for arg in argv):  # the flag that became its own script
        print("finetune_spam.py: error: --export_pretraining_text moved to its own entry point: python "
              "recipes/export_sms_text.py --output_file FILE (same data flags).", file=sys.stderr)
        sys.exit(2)
    return run_recipe(ARGUMENT_TYPES, finetune_spam, argv, prog=__file__)


if __name__ == "__main__":
    main()
