#!/usr/bin/env bash
# The spam-classification figures of docs/spam.md, from nothing but the SMS Spam Collection:
#   1. write the messages outside every evaluation split (the natural-mix test, the balanced validation and test, the
#      natural-mix validation; no labels) as a pretraining text with recipes/export_sms_text.py,
#   2. pretrain the "small" preset on them with recipes/pretrain.py (its own 4,000-token BPE),
#   3. fine-tune all weights as a spam classifier on the book's protocol (balanced, 70/10/20, seed 123),
#   4. fine-tune all weights on all the data (every ham message, class-weighted loss),
# each with its decision threshold chosen on its validation split for a false-positive rate on ham <= 0.5%, and with
# the TF-IDF + linear SVM baseline trained on the same split; then print docs/spam.md's table with scripts/spam_table.py
# (also saved as spam-table.md).
# Usage: recipes/reproduce_spam.sh [SMSSpamCollection file] [output folder]
# (without a file the recipe downloads the collection from UCI once, into the Hugging Face cache folder).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=()
if [ -n "${1:-}" ]; then DATA=(--data_file "$1"); fi
OUT="${2:-runs}"
FPR="${TARGET_FPR:-0.005}"

python recipes/export_sms_text.py "${DATA[@]}" --output_file "$OUT/sms-pretrain.txt"
python recipes/pretrain.py --train_file "$OUT/sms-pretrain.txt" --preset small --max_length 64 --vocab_size 4000 \
    --num_train_epochs 10 --drop_rate 0.1 --output_dir "$OUT/sms-pretrain" --sample_prompt "Free entry"
python recipes/finetune_spam.py --model_name_or_path "$OUT/sms-pretrain" "${DATA[@]}" --mode full \
    --learning_rate 3e-4 --num_train_epochs 5 --target_fpr "$FPR" --output_dir "$OUT/spam-full"
python recipes/finetune_spam.py --model_name_or_path "$OUT/sms-pretrain" "${DATA[@]}" --mode full \
    --no_balance --class_weighting --learning_rate 3e-4 --num_train_epochs 2 --target_fpr "$FPR" \
    --output_dir "$OUT/spam-all"
python scripts/spam_table.py "$OUT/spam-full" "$OUT/spam-all" | tee "$OUT/spam-table.md"
