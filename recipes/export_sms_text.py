"""SMS pretraining text: the SMS Spam Collection's messages outside every evaluation split (the natural-mix test, the
balanced validation and test, the natural-mix validation), one per line and without labels, so a model pretrained on
them never saw a message it is later judged on (recipes/reproduce_spam.sh runs this first).

    python recipes/export_sms_text.py --data_file SMSSpamCollection --output_file runs/sms-pretrain.txt
    python recipes/export_sms_text.py --help     # the data flags, the same as recipes/finetune_spam.py's

The splits are those recipes/finetune_spam.py cuts with the same data flags; the logic lives in hfgpt.data.spam.
"""

from dataclasses import dataclass, field

from hfgpt.data.spam import SpamDataArguments, SpamReport, write_pretraining_text
from hfgpt.training.recipe_cli import run_recipe


@dataclass
class ExportArguments:
    output_file: str = field(metadata={"help": "The text file to write: one message per line, no labels."})


def export(data_args: SpamDataArguments, export_args: ExportArguments) -> int:
    report = SpamReport()
    messages, splits = data_args.load(report)
    written = write_pretraining_text(messages, splits, export_args.output_file)
    print(f"Wrote {written} of {report.read} messages (none from an evaluation split) to {export_args.output_file}")
    return written


def main(argv=None):
    return run_recipe((SpamDataArguments, ExportArguments), export, argv, prog=__file__)


if __name__ == "__main__":
    main()
