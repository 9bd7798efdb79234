from qmra.cli import main

raise SystemExit(main())
