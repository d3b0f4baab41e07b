"""margin: the asymmetric maximum-margin bias of quasi-homogeneous networks (Kunin et al. 2023); see README.md."""
