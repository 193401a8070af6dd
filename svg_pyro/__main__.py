from svg_pyro.cli import main

raise SystemExit(main())
