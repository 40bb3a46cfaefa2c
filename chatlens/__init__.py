"""chatlens: emotion for every chat message, a summary for every conversation, an honest nightly report.

The package is layered; each layer imports only those below it (checked by import-linter, see
pyproject.toml):

    chatlens.cli                       the `chatlens` command: assembles everything
    chatlens.training, chatlens.bench  fitting and promoting models; measuring speed
    producer, worker, eval, chatlens.ops
                                       the roles: queueing, serving, evaluating, operating
    chatlens.backends                  the model backends: classifiers and summarisers
    chatlens.core                      settings, records, Redis keys and connections, errors
"""

from importlib.metadata import PackageNotFoundError, version

try:
    # pyproject.toml is the one place the version is written; an installed chatlens carries it.
    __version__ = version("chatlens")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
