"""The ``svg-pyro`` commands, one module each: every module exposes ``add_parser(subparsers)``
(its flags; returns its parser) and ``run(args)`` (calls the library, which knows nothing of
argparse), and :mod:`svg_pyro.commands.cli` registers them all in one loop."""
