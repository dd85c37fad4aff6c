from hermipy.cli import main

raise SystemExit(main())
