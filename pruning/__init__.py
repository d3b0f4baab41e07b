"""pruning: iterative magnitude pruning with rewinding, linear mode connectivity and the flatness limit on pruning."""
