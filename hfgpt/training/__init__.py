"""Training code behind the recipes: pretraining (chapter 5), spam classification (chapter 6, appendix E), instruction
fine-tuning (chapter 7), the Trainer callbacks and the peft LoRA helper. Each recipe in ``recipes/`` only parses its
arguments and calls one function here (through :func:`hfgpt.training.recipe_cli.run_recipe`)."""
