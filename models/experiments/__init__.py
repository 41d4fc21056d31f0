"""Experiments built on the zoo and the trainer: knowledge distillation and alignment (reward model, best-of-n, REINFORCE+KL, DPO)."""
