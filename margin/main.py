"""margin: the asymmetric maximum-margin bias of quasi-homogeneous networks. See margin/README.md."""

from common import app
from margin import experiment

if __name__ == "__main__":
    app.run(experiment)
