"""Start-up of the "RTOFS (PySpark)" kernel: `spark` (lazy), the rtofs library and viewers.

Installed by `rtofs kernel install`; the code lives in rtofs_lib.notebook.kernel.start.
"""

try:
    from rtofs_lib.notebook.kernel import start as _rtofs_start
except ImportError as _e:  # the kernel still starts, as plain Python
    print(f"RTOFS kernel: cannot import rtofs_lib ({_e}); reinstall the platform venv")
else:
    _rtofs_start(globals())
    del _rtofs_start
