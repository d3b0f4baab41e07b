"""Raventos et al. 2023: pretraining task diversity and the emergence of non-Bayesian in-context learning."""
