"""The test harness: the real services of one pytest process, the app on them, the worker."""
