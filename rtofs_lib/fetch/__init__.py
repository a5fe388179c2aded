"""Getting files: RTOFS names, the NOMADS listing, verified transfers, the crawler and the archive.

Nothing here imports the rest of the package: every other stage may use these modules.
"""
