"""disentangle: disentanglement from biological constraints. See disentangle/README.md."""

from common import app
from disentangle import experiment

if __name__ == "__main__":
    app.run(experiment)
