"""Exercises: a stage with one part removed or broken, and the stage's own tests to say when it is back.

    catalog.py   the exercises in exercises/<ID>/exercise.toml, and where their workspaces live
    patching.py  starter patches: write one from an edited copy, apply one exactly
    checking.py  run an exercise's tests in a folder and say what still fails
    pages.py     the Exercises section of each chapter, generated from the catalog
    cli.py       `workbook exercise list | start | check | hint | verify | docs | patch`
"""
