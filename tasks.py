"""Invoke tasks for dialogsum-batch (`invoke --list`); each lives in dialogsum_batch/tasks/."""

from dialogsum_batch.tasks import collection

ns = collection()
