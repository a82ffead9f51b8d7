"""RQ jobs: thin, take ids, load fresh rows and call a service; safe to run twice."""
