"""Data: the generated and shipped data sets (xor, moons, spirals, iris.csv) and the token sequences the GPT tasks train on."""
