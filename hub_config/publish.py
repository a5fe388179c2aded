#!/usr/bin/env python3
"""Publish the example notebooks read-only and make the group-writable collab folder.

Run by an admin or Ansible as root, with the project's Python::

    .venv/bin/python hub_config/publish.py [--examples DIR] [--root DIR] [--group NAME]

Defaults come from the hub settings (``shared.root``, ``groups.users``); see README.md.
"""

from rtofs_lib.hub.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
