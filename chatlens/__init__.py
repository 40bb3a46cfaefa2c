"""chatlens: emotion for every chat message, a summary for every conversation, an honest nightly report.

The package is layered; each layer imports only those below it (checked by import-linter, see
pyproject.toml):

    chatlens.cli                       the `chatlens` command: assembles everything
    chatlens.training, chatlens.bench  fitting and promoting models; measuring speed
    eval                               the nightly evaluation role
    producer, worker                   the two queue roles
    chatlens.backends                  the model backends: classifiers and summarisers
    chatlens.core                      settings, records, Redis keys and connections, errors
"""

__version__ = "0.2.0"
