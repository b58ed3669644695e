"""The workbook's lab bench: what every stage runs against but is not the lesson.

    runtime/    start, find and stop processes, stages, Redis and databases; the time scale
    twitter/    the fake Twitter API with its outage modes
    kestrel/    the Kestrel-protocol queue server
    bench/      one module per `workbook bench NAME`
    drill/      the outage drill, its verdicts, report and headline
    sitegen/    the site's generated pages: diffs, invariants matrix, CLI reference
    testing/    what the tests share: the pytest plugin, fixtures, site client, invariants
    exercises/  the exercises: catalog, starter patches, checks
    cli.py      the `workbook` command line
"""
