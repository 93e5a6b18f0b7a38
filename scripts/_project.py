"""Put the project folder first on sys.path, so that `import react` works in any environment.

Snakemake adds this folder (scripts/) to the path of every script it runs; the conda
environments of `--sdm conda` (envs/*.yaml) hold the dependencies but not the project.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
