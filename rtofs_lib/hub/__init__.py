"""The multi-user JupyterHub of the platform.

``hub_config/jupyterhub_config.py`` is a thin file that calls :func:`configure`; everything a
site changes lives in one TOML settings file (:mod:`rtofs_lib.hub.settings`), so the Ansible
role only templates settings, never Python.

Modules: :mod:`~rtofs_lib.hub.settings` (defaults → file → drop-ins),
:mod:`~rtofs_lib.hub.secrets` (cookie secret and proxy token files),
:mod:`~rtofs_lib.hub.spawners` (profile-checked Slurm and local spawners),
:mod:`~rtofs_lib.hub.config` (settings → traitlets config), :mod:`~rtofs_lib.hub.dashboard_service`
(the maps dashboard as a HubOAuth-protected service; :mod:`~rtofs_lib.hub.oauth` its login,
safe for many flows at once), :mod:`~rtofs_lib.hub.tileserver` (the map's tiles and series),
:mod:`~rtofs_lib.hub.publish` (shared
notebook folders) and :mod:`~rtofs_lib.hub.run_local` (the whole hub on one machine).
"""
