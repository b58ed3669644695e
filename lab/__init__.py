"""The workbook's lab bench: what every stage runs against but is not the lesson.

The fake Twitter API, the Kestrel-protocol queue server, process control, the time scale, the
pytest plugin that keeps the stages apart, and the `workbook` command line.
"""
