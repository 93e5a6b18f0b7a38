"""Put the project folder first on sys.path, so that `import react` works in any environment;
limit the job's threads before any library sizes its pool.

Snakemake adds this folder (scripts/) to the path of every script it runs; the conda
environments of `--sdm conda` (envs/*.yaml) hold the dependencies but not the project.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Every script imports this module first, before pyarrow loads numpy (whose OpenBLAS
# sizes its pool from the environment Snakemake set): the job's thread limit goes in
# now. react.workflow.logged() applies it again and writes it in the job's log.
_snakemake = getattr(sys.modules.get("__main__"), "snakemake", None)
if _snakemake is not None:
    from react.threads import limit_job_threads

    limit_job_threads(_snakemake)
