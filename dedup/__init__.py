"""SemDeDup (Abbas et al. 2023): semantic deduplication with embeddings, k-means and a per-cluster
rule."""
