from smokegate.cli import main

raise SystemExit(main())
