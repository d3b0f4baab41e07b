"""spectra: Singular vectors of sums of rectangular random matrices. See spectra/README.md."""

from common import app
from spectra import experiment

if __name__ == "__main__":
    app.run(experiment)
