"""The zoo: the models themselves (a tanh neuron, the MLP, the GPT and its fused step, the reward model, a micrograd-style scalar MLP)."""
