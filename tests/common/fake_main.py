from common import app
from tests.common import fake_experiment

if __name__ == "__main__":
    app.run(fake_experiment)
