"""Preference tuning (the book's chapter-7 bonus: Direct Preference Optimization) with TRL's DPOTrainer, on an
instruction-tuned model: validation reward margin, preference accuracy and sample responses before and after.

    python recipes/finetune_preferences.py --model_name_or_path runs/instructions    # the book's data, downloaded
    python recipes/finetune_preferences.py --model_name_or_path runs/instructions \
        --data_file instruction-data-with-preference.json --mode lora --beta 0.1
    python recipes/finetune_preferences.py --help       # every model, LoRA, data, judge and DPOConfig flag

The logic lives in hfgpt.training.finetune_preferences; this file only parses arguments.
"""

from hfgpt.training.finetune_preferences import ARGUMENT_TYPES, finetune_preferences
from hfgpt.training.recipe_cli import run_recipe


def main(argv=None):
    return run_recipe(ARGUMENT_TYPES, finetune_preferences, argv, prog=__file__)


if __name__ == "__main__":
    main()
