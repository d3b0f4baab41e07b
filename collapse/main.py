"""collapse: Stochastic collapse (Chen, Kunin, Yamamura, Ganguli 2023). See collapse/README.md."""

from collapse import experiment
from common import app

if __name__ == "__main__":
    app.run(experiment)
