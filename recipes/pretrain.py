"""Pretrain a GPT from scratch (the book's chapter 5) with the Hugging Face Trainer.

    accelerate launch --config_file recipes/accelerate/single_process.yaml recipes/pretrain.py   # the defaults
    accelerate launch --config_file recipes/accelerate/single_process.yaml recipes/pretrain.py \
        --train_file my.txt --preset mini --max_steps 500
    python recipes/pretrain.py --help                            # every model, data and TrainingArguments flag

The logic lives in hfgpt.training.pretrain; this file only parses arguments.
"""

from hfgpt.training.pretrain import ARGUMENT_TYPES, pretrain
from hfgpt.training.recipe_cli import run_recipe


def main(argv=None):
    return run_recipe(ARGUMENT_TYPES, pretrain, argv, prog=__file__)


if __name__ == "__main__":
    main()
