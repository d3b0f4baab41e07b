"""disentangle: disentanglement with biological constraints (Whittington, Dorrell, Ganguli, Behrens 2023)."""
