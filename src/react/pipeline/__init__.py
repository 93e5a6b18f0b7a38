"""The glue the workflow's scripts call: evaluate a model, generate teacher shards, run a job."""
