"""The ``mr2ct`` command line: thin click commands over the :mod:`mr2ct` library.

Installed under the import name ``mr2ct_cli`` (see setup.py).
"""
