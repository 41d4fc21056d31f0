"""The tour's stages (`twograd tour`): `runner` runs them in order; every other module is one stage."""
