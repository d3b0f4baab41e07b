"""The format of a mutant: one realistic bug in the source, and the tests that must fail when it is present."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One bug injected by exact string replacement.

    Attributes:
      file: the source file, relative to the repository root (``"icl/thresholds.py"``).
      old: an exact snippet of the current source that occurs exactly once in ``file`` (one line or a few).
      new: the snippet with the bug, written the way a real bug happens (a wrong axis, an off-by-one, a sign,
        ``>`` for ``>=``, a missing factor 2, a skipped reset, ids for positions, ...).
      tests: the pytest node ids (``"tests/icl/test_x.py::test_name"``) or test files that must catch it; slow
        tests are allowed (the runner runs them).
      why: one line saying what the bug is.
    """

    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str

    def __post_init__(self):
        if isinstance(self.tests, str):
            object.__setattr__(self, "tests", (self.tests,))
        else:
            object.__setattr__(self, "tests", tuple(self.tests))
        if not self.file or self.file.startswith("/") or ".." in self.file.split("/"):
            raise ValueError(f"file: must be a path relative to the repository root, got {self.file!r}")
        if not self.old:
            raise ValueError(f"old: empty snippet for {self.file}")
        if self.old == self.new:
            raise ValueError(f"new: identical to old for {self.file} ({self.why})")
        if not self.tests or not all(isinstance(t, str) and t.startswith("tests/") for t in self.tests):
            raise ValueError(f"tests: need one or more test ids under tests/ for {self.file}, got {self.tests!r}")
        if not self.why.strip():
            raise ValueError(f"why: empty for {self.file}")
