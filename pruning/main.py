"""pruning: what a winning ticket's mask encodes (IMP, rewinding, mode connectivity). See pruning/README.md."""

from common import app
from pruning import experiment

if __name__ == "__main__":
    app.run(experiment)
