"""The job: the one owner of the `jobs` row for both tiers.

`table` declares it, `rows` builds the rows each tier writes (and names their columns),
`statements` holds the SQL that writes them, `render` turns a row into the API's job object.
Adding a column means editing this package and writing a migration.
"""

from shared.jobs.table import ANALYTICS_COLUMNS, FINAL_JOB_STATUSES, JOB_STATUSES, Job

__all__ = ["ANALYTICS_COLUMNS", "FINAL_JOB_STATUSES", "JOB_STATUSES", "Job"]
