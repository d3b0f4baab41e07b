"""icl: Pretraining task diversity and non-Bayesian in-context learning. See icl/README.md."""

from common import app
from icl import experiment

if __name__ == "__main__":
    app.run(experiment)
