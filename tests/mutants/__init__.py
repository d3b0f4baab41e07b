"""The mutation suite: one-line bugs in each package's headline computations, and the tests that must catch them.

Each package lists its mutants in ``tests/mutants/<pkg>.py`` as ``MUTANTS = [Mutant(...), ...]`` (see ``spec.py``);
``python -m tests.mutants.run`` (``make mutants``) applies each one to a temporary copy of the repository, runs its
tests, and prints which were killed.
"""
