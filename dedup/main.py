"""dedup: SemDeDup: Data-efficient learning at web-scale through semantic deduplication. See
dedup/README.md."""

from common import app
from dedup import experiment

if __name__ == "__main__":
    app.run(experiment)
