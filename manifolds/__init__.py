"""manifolds: effective dimension of class manifolds and their boundaries by random cutting planes (Fort et al.
2022). See manifolds/README.md."""
