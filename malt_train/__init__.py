"""malt_train: MALT tree generation, value-iteration labelling and role-wise LoRA SFT/DPO."""
