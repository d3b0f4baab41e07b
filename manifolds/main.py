"""manifolds: the effective dimension of class manifolds by random cutting planes. See manifolds/README.md."""

from common import app
from manifolds import experiment

if __name__ == "__main__":
    app.run(experiment)
