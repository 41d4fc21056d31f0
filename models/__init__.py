"""The model zoo, data sets, training loops and the `twograd` command."""
