from svg_pyro.commands.cli import main

raise SystemExit(main())
