#!/usr/bin/env bash
# Snakemake runs this once in the new environment, right after creating it (--sdm conda): it
# installs the react library (src/) that the rules' scripts import. workflow/rules/common.smk
# exports REACT_PROJECT_DIR, the folder the workflow came with. Editable: code changes need no rebuild.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e "${REACT_PROJECT_DIR:?set by workflow/rules/common.smk}"
